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
use std::path::PathBuf;
use std::time::Duration;

use util::control::{ctl, parse_status, send_then_read_to_end};
use util::upgrade::{parse_new_master, status_when, wait_gone, TempDir};
use util::*;

/// An old master with one worker and a control socket, which was sent
/// `commands` on one connection (its input ended after them), and what it
/// replied. Its directory goes with it (killing what still runs from it).
struct Upgraded {
    _dir: TempDir,
    control: PathBuf,
    old: Server,
    replies: Vec<String>,
    new_master: u32,
}

/// Starts an old master in a directory of its own named `name`, writes
/// `commands` to its control socket on one connection and reads the
/// replies to the end; the new master its upgrade started.
fn upgrade_with(name: &str, commands: &[u8]) -> Upgraded {
    let dir = TempDir::new(name);
    let binary = dir.install();
    let control = dir.join("control.sock");
    let old =
        Server::start_binary(&binary, &["--workers", "1", "--no-pin", "--control", control.to_str().expect("UTF-8")]);
    status_when(&control, 1, |_| true);
    let replies = send_then_read_to_end(&control, commands).expect("the replies");
    let replies: Vec<String> = replies.lines().map(str::to_string).collect();
    assert!(replies.first().is_some_and(|r| r.starts_with("ok upgraded: pid ")), "the upgrade: {replies:?}");
    let started = old.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let new_master = parse_new_master(&started).expect("the new master's pid");
    Upgraded { _dir: dir, control, old, replies, new_master }
}

impl Upgraded {
    /// Waits for the old master to exit 0, then stops the new one.
    fn old_exits_then_stop_the_new(&mut self) {
        assert_eq!(self.old.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");
        let (code, out, _) = ctl(&self.control, &["stop"]);
        assert_eq!((code, out.as_str()), (0, "ok stopping"));
        assert!(wait_gone(&[self.new_master], Duration::from_secs(15)).is_empty());
    }
}

#[test]
fn commands_after_upgrade_on_one_connection_wait_for_its_outcome() {
    let mut u = upgrade_with("upgrade-pipelined", b"upgrade\nreload\nscale 3\nstatus\n");
    assert_eq!(u.replies.len(), 4, "a reply per command: {:?}", u.replies);
    let handed_over = format!("has handed over to pid {} (upgrade)", u.new_master);
    for refused in &u.replies[1..3] {
        assert!(refused.starts_with("error: ") && refused.contains(&handed_over), "{refused}");
    }
    let status = parse_status(&u.replies[3]);
    assert_eq!(status["workers"].as_array().map(Vec::len), Some(1), "no worker was added: {status}");

    u.old_exits_then_stop_the_new();
    let started_after = |l: &&String| l.contains("reload: replacing") || l.contains("scaling from");
    let log = u.old.log();
    assert!(!log.iter().any(|l| started_after(&l)), "the old master started workers after the upgrade: {log:#?}");
}

#[test]
fn upgrade_then_stop_on_one_connection_leaves_the_new_master_serving() {
    let mut u = upgrade_with("upgrade-then-stop", b"upgrade\nstop\n");
    assert_eq!(u.replies.len(), 2, "a reply per command: {:?}", u.replies);
    assert_eq!(u.replies[1], "ok stopping");
    assert_eq!(u.old.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");

    // The old master is gone: what answers now is the new one.
    let mut stream = connect(u.old.addr());
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send a request");
    let response = read_response(&mut std::io::BufReader::new(stream)).expect("the new master answers");
    check_ok(&response);
    u.old_exits_then_stop_the_new();
}
