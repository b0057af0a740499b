//! A second upgrade while the first one's old master still drains (a
//! request of its is still on its way): the middle master hands over in
//! turn and exits 0, and the first master, whose child it is, says so
//! plainly. Before, it logged at ERROR that nothing would accept once it
//! had drained, while the newest master served (seen by a stress run of
//! upgrades a second apart under clients sending 3 MB bodies slowly).

use crate::util;

use std::time::Duration;

use util::control::ctl;
use util::upgrade::{parse_new_master, status_when, wait_gone, TempDir};
use util::*;

#[test]
fn an_upgrade_while_the_previous_old_master_drains_is_no_error() {
    let dir = TempDir::new("upgrade-chained");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let mut first = Server::start_binary(
        &binary,
        &["--workers", "1", "--no-pin", "--control", control.to_str().expect("UTF-8 path")],
    );
    status_when(&control, 1, |_| true);
    // Half a body keeps the first master's worker, and so the first master, draining.
    let mut held = first.connect();
    held.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    status_when(&control, 1, |w| w["live"] == 1);

    let upgrade = |from: &Server| {
        let mark = from.log_len();
        let (code, out, err) = ctl(&control, &["upgrade"]);
        assert_eq!(code, 0, "ctl upgrade: {out} {err}");
        let (_, line) = from.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
        parse_new_master(&line).expect("the new master's pid")
    };
    let middle = upgrade(&first);
    first.wait_for_log(|l| l.contains("upgrade: this master no longer accepts: draining 1 worker"), IO_TIMEOUT);
    // The middle master logs to the same stderr: its lines are in `first`'s log.
    let newest = upgrade(&first);
    let said = format!("upgrade: the new master (pid {middle}) exited with code 0 after this one handed over");
    first.wait_for_log(|l| l.contains(&said), IO_TIMEOUT);
    let line = first.raw_log().into_iter().find(|l| l.contains(&said)).expect("the line as printed");
    let parsed = parse_log_line(&line).expect("a log line");
    assert_eq!((parsed.pid, parsed.level), (first.pid(), "INFO"), "{line}");
    assert!(!line.contains("nothing will accept"), "{line}");

    // The first master still answers what it holds, then exits; the newest serves.
    held.send(b"world");
    assert_eq!(held.read().status, 200);
    assert_eq!(first.wait_exit(Duration::from_secs(15)).code(), Some(0));
    Conn::connect(first.addr()).get_ok();
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(wait_gone(&[newest], Duration::from_secs(15)).is_empty());
}
