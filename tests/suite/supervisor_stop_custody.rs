//! Custody through a stop: a connection the master still holds for a
//! worker (in a batch the worker never acknowledged) when the stop kills
//! that worker is refused (`503`) by the master like every connection no
//! worker can take during a stop, never dropped with the master's exit
//! (which the client saw as a reset).

use crate::util;

use std::time::Duration;

use util::procs::stop_between_turns;
use util::stats::{expect_worker, num};
use util::*;

#[test]
fn a_batch_unacknowledged_at_a_stop_is_refused_not_reset() {
    let mut s = Server::start(&["--mode", "rr", "--workers", "1", "--no-pin", "--shutdown-timeout", "1"]);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&expect_worker(&ready, 1), "pid") as u32;
    // Stopped between turns: the batch stays unread in its socket.
    let (_cont, _) = stop_between_turns(pid);

    let mut c = Conn::connect(s.addr());
    c.send(GET_CLOSE);
    let mut last = serde_json::Value::Null;
    let handed = eventually(Duration::from_secs(5), || {
        last = s.stats();
        num(&expect_worker(&last, 1), "unacked") == 1
    });
    assert!(handed, "the connection is in a batch the stopped worker holds unread: {last}");

    // The stop kills the stopped worker after --shutdown-timeout; what the
    // master still held for it has no worker to go to: a 503.
    s.signal(libc::SIGTERM);
    let answer = c.try_read().unwrap_or_else(|e| {
        panic!("the client's connection was dropped, not refused: {e}; log:\n{}", s.raw_log().join("\n"))
    });
    check_error(&answer, 503);
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "master exit status {status}");
}
