//! Log lines: every one carries an RFC 3339 time, a level, the program's
//! name and the pid; `--log-format json` makes each one JSON object for a
//! log shipper (`"program":"ringmaster"`), with structured fields on the
//! worker lifecycle lines.

use crate::util;

use std::time::Duration;

use util::*;

#[test]
fn text_lines_carry_a_level() {
    let mut s = Server::start(&["--workers", "1"]);
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    let raw = s.raw_log();
    for line in &raw {
        let parsed = parse_log_line(line).unwrap_or_else(|| panic!("not a log line: {line:?}"));
        assert_eq!(parsed.pid, s.pid(), "{line}");
        assert_eq!(parsed.level, "INFO", "a clean start and stop is all info: {line}");
    }
    assert!(raw.len() >= 4, "{raw:?}");
}

#[test]
fn a_crash_is_a_warning() {
    let s = Server::start(&["--workers", "1"]);
    let worker = s.logged_worker_pids()[0];
    util::procs::kill(worker, libc::SIGKILL);
    s.wait_for_log(|l| l.contains("restarting in"), IO_TIMEOUT);
    let raw = s.raw_log();
    let exit = raw.iter().find(|l| l.contains(&format!("(pid {worker}) killed by signal 9"))).expect("the exit line");
    assert_eq!(parse_log_line(exit).map(|l| l.level), Some("WARN"), "{exit}");
}

#[test]
fn json_lines_are_objects_with_time_level_program_pid_message_and_fields() {
    let mut s = Server::start(&["--workers", "2", "--log-format", "json"]);
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    let raw = s.raw_log();
    let mut started = Vec::new();
    for line in &raw {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(line.starts_with("{\"time\":\"") && line.ends_with('}'), "one object, time first: {line}");
        for key in ["time", "level", "program", "pid", "message"] {
            assert!(v.get(key).is_some(), "{key} in {line}");
        }
        assert_eq!(v["program"].as_str(), Some("ringmaster"), "the binary's name, as its text lines': {line}");
        let time = v["time"].as_str().unwrap();
        let as_text = format!("{time} INFO  ringmaster[1]: x");
        assert!(parse_log_line(&as_text).is_some(), "an RFC 3339 UTC time with milliseconds: {time}");
        assert!(["info", "warn", "error"].contains(&v["level"].as_str().unwrap()), "{line}");
        assert_eq!(v["pid"].as_u64(), Some(u64::from(s.pid())), "{line}");
        let message = v["message"].as_str().unwrap();
        if message.starts_with("worker ") && message.contains(" started (pid ") {
            started.push((v["worker"].as_u64().unwrap(), v["worker_pid"].as_u64().unwrap()));
            assert!(message.contains(&format!("(pid {}", v["worker_pid"])), "{line}");
        }
        if message.starts_with("listening on ") {
            assert_eq!(v["address"].as_str(), Some(s.addr().to_string().as_str()), "{line}");
            assert_eq!((v["mode"].as_str(), v["workers"].as_u64()), (Some("rr"), Some(2)), "{line}");
        }
    }
    started.sort_unstable();
    assert_eq!(started.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2], "{raw:?}");
}
