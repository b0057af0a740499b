//! Commands written after `upgrade` on the same control connection wait
//! for the upgrade's outcome, then run in order on the master that read
//! them. Once it has handed over it only drains: `reload`, `scale` and
//! `upgrade` are refused there, naming the new master, and `status` says
//! what it holds by then. Before, they ran at once while the new master
//! was starting, their replies held behind the upgrade's: `upgrade`,
//! `reload`, `scale 3` on one connection had the old master start three
//! workers it drained a moment later, and answer `ok` for both; and
//! `upgrade`, `stop` stopped the old master at once, which gave the
//! upgrade up and stopped the new master too: nobody served.

use crate::util;

use std::io::Write;
use std::time::Duration;

use util::control::{ctl, parse_status, send_then_read_to_end};
use util::upgrade::{parse_new_master, status_when, wait_gone, TempDir};
use util::*;

#[test]
fn commands_after_upgrade_on_one_connection_wait_for_its_outcome() {
    let dir = TempDir::new("upgrade-pipelined");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let mut old =
        Server::start_binary(&binary, &["--workers", "1", "--no-pin", "--control", control.to_str().expect("UTF-8")]);
    status_when(&control, 1, |_| true);

    let replies = send_then_read_to_end(&control, b"upgrade\nreload\nscale 3\nstatus\n").expect("the replies");
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines.len(), 4, "a reply per command: {replies}");
    assert!(lines[0].starts_with("ok upgraded: pid "), "{replies}");
    let started = old.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let new_master = parse_new_master(&started).expect("the new master's pid");
    for refused in &lines[1..3] {
        let handed_over = format!("has handed over to pid {new_master} (upgrade)");
        assert!(refused.starts_with("error: ") && refused.contains(&handed_over), "{refused}");
    }
    let status = parse_status(lines[3]);
    assert_eq!(status["workers"].as_array().map(Vec::len), Some(1), "no worker was added: {status}");

    assert_eq!(old.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");
    let started_after = |l: &&String| l.contains("reload: replacing") || l.contains("scaling from");
    let log = old.log();
    assert!(!log.iter().any(|l| started_after(&l)), "the old master started workers after the upgrade: {log:#?}");
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}

#[test]
fn upgrade_then_stop_on_one_connection_leaves_the_new_master_serving() {
    let dir = TempDir::new("upgrade-then-stop");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let mut old =
        Server::start_binary(&binary, &["--workers", "1", "--no-pin", "--control", control.to_str().expect("UTF-8")]);
    status_when(&control, 1, |_| true);

    let replies = send_then_read_to_end(&control, b"upgrade\nstop\n").expect("the replies");
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines.len(), 2, "a reply per command: {replies}");
    assert!(lines[0].starts_with("ok upgraded: pid "), "the upgrade is not given up: {replies}");
    assert_eq!(lines[1], "ok stopping", "{replies}");
    let started = old.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let new_master = parse_new_master(&started).expect("the new master's pid");
    assert_eq!(old.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");

    // The old master is gone: what answers now is the new one.
    let mut stream = connect(old.addr());
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send a request");
    let response = read_response(&mut std::io::BufReader::new(stream)).expect("the new master answers");
    check_ok(&response);
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(wait_gone(&[new_master], Duration::from_secs(15)).is_empty());
}
