//! Configuration of the balancer: CPU pinning (`--cpus`, `--no-pin`) as the
//! log, the stats line and the kernel see it, and bad configurations that must
//! fail fast with one line on stderr and a non-zero exit.

use crate::util;

use std::net::TcpListener;
use std::time::Duration;
use util::procs::run_to_exit;
use util::*;

// --- small local helpers ---------------------------------------------------------------

/// Asserts a bad configuration: an exit by itself within 10 s, non-zero, nothing
/// on stdout, stderr exactly one non-empty line in the log format (time, pid,
/// message); returns its message.
fn expect_config_error(args: &[&str]) -> String {
    let (status, stdout, stderr) = run_to_exit(args, Duration::from_secs(10));
    assert!(!status.success(), "{args:?} exited with {status}; stderr {stderr:?}");
    assert!(status.code().is_some(), "{args:?} died by a signal ({status}); stderr {stderr:?}");
    assert_eq!(stdout, "", "{args:?} printed on stdout");
    assert!(stderr.ends_with('\n'), "{args:?}: stderr {stderr:?} is not one terminated line");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected exactly one stderr line, got {stderr:?}");
    assert!(!lines[0].trim().is_empty(), "{args:?}: empty error line");
    eprintln!("{args:?} -> exit {:?}: {}", status.code(), lines[0]);
    let line = parse_log_line(lines[0]).unwrap_or_else(|| panic!("{args:?}: not a log line: {:?}", lines[0]));
    // The time is the machine's clock: a minute either way only catches a wrong format.
    assert!(line.unix_ms.abs_diff(unix_ms_now()) < 60_000, "{args:?}: log time far from now: {:?}", lines[0]);
    assert!(!line.message.trim().is_empty(), "{args:?}: empty error message");
    line.message.to_string()
}

/// CPUs this (test) process may run on, from a Cpus_allowed_list like `0-1,4`.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

fn cpus_allowed(pid: u32) -> Vec<usize> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).expect("Cpus_allowed_list");
    parse_cpu_list(line.split_once(':').unwrap().1)
}

/// Stats once every worker reports state "ready" (pinned and serving), at most 5 s.
fn stats_when_ready(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ready = eventually(Duration::from_secs(5), || {
        last = s.stats();
        last["workers"].as_array().unwrap().iter().all(|w| w["state"] == "ready")
    });
    assert!(ready, "workers not all ready within 5 s: {last}");
    last
}

/// `cpu C` from `worker N started (pid P, cpu C)`.
fn logged_cpu(line: &str) -> String {
    let rest = line.split("cpu ").nth(1).unwrap_or_else(|| panic!("no cpu in {line:?}"));
    rest.trim_end_matches(')').to_string()
}

// --- pinning -------------------------------------------------------------------------

#[test]
fn workers_are_pinned_in_turn_wrapping_around_the_allowed_cpus() {
    let allowed = cpus_allowed(std::process::id());
    let n = allowed.len() + 1; // one more worker than CPUs: the last wraps to the first CPU
    let s = Server::start(&["--workers", &n.to_string()]);
    let stats = stats_when_ready(&s);
    let log = s.log();
    for (k, w) in stats["workers"].as_array().unwrap().iter().enumerate() {
        let id = k + 1;
        let want = allowed[k % allowed.len()];
        assert_eq!(w["cpu"].as_u64(), Some(want as u64), "worker {id}: {stats}");
        let pid = w["pid"].as_u64().unwrap() as u32;
        let line = log
            .iter()
            .find(|l| parse_worker_started(l) == Some((id as u32, pid)))
            .unwrap_or_else(|| panic!("no start line for worker {id} pid {pid}"));
        assert_eq!(logged_cpu(line), want.to_string(), "{line}");
        assert_eq!(cpus_allowed(pid), vec![want], "worker {id} (pid {pid}) affinity");
    }
}

#[test]
fn cpus_option_chooses_the_set() {
    let allowed = cpus_allowed(std::process::id());
    let cpu = *allowed.last().unwrap();
    let s = Server::start(&["--workers", "2", "--cpus", &cpu.to_string()]);
    let stats = stats_when_ready(&s);
    for w in stats["workers"].as_array().unwrap() {
        assert_eq!(w["cpu"].as_u64(), Some(cpu as u64), "{stats}");
        assert_eq!(cpus_allowed(w["pid"].as_u64().unwrap() as u32), vec![cpu], "{stats}");
    }
    let mut c = s.connect();
    c.get_ok();
}

#[test]
fn no_pin_gives_cpu_null_in_stats_and_cpu_none_in_the_log() {
    let mine = cpus_allowed(std::process::id());
    let s = Server::start(&["--workers", "2", "--no-pin"]);
    let stats = stats_when_ready(&s);
    let ws = stats["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    for w in ws {
        assert!(w["cpu"].is_null(), "cpu must be null with --no-pin: {stats}");
        // Not pinned: the worker may run wherever its parent may.
        assert_eq!(cpus_allowed(w["pid"].as_u64().unwrap() as u32), mine, "{stats}");
    }
    let starts: Vec<String> = s.log().into_iter().filter(|l| parse_worker_started(l).is_some()).collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    for l in &starts {
        assert!(l.ends_with(", cpu none)"), "{l}");
    }
    s.connect().get_ok();
}

// --- bad configuration ------------------------------------------------------------------

#[test]
fn port_in_use_is_one_line_and_nonzero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for mode in ["rr", "least", "shared", "reuseport"] {
        let line = expect_config_error(&["--bind", &addr, "--workers", "1", "--mode", mode]);
        assert!(line.contains(&addr), "the error names the address: {line}");
    }
    // Our listener was not disturbed.
    drop(taken);
}

#[test]
fn bad_cpus_is_one_line_and_nonzero() {
    for cpus in ["x", "999", "1-0", ""] {
        expect_config_error(&["--bind", "127.0.0.1:0", "--workers", "1", "--cpus", cpus]);
    }
}

#[test]
fn zero_workers_is_one_line_and_nonzero() {
    let line = expect_config_error(&["--bind", "127.0.0.1:0", "--workers", "0"]);
    assert!(line.contains("workers"), "{line}");
}

#[test]
fn unknown_mode_is_one_line_and_nonzero() {
    let line = expect_config_error(&["--bind", "127.0.0.1:0", "--workers", "1", "--mode", "foo"]);
    assert!(line.contains("foo"), "{line}");
}
