//! Supervisor: a worker sent a stop signal of its own (`kill -TERM PID` of
//! the worker, not of the master) drains; the master takes it out of the
//! turn and closes its channel, so it ends once its connections are done
//! and is restarted, and new clients are answered meanwhile. Until
//! 2026-12-07 the worker waited for its channel's end, which never came,
//! until `--shutdown-timeout` (30 s): with one worker, every new client
//! waited all that time, in the master (`rr`, `least`) or in the listen
//! queue (`shared`).

use crate::util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::procs::{kill, stop_and_check_no_process_left};
use util::stats::{num, worker};
use util::*;

/// How long a client may wait for its answer while the signalled worker
/// ends and its replacement starts: a restart takes well under a second
/// (100 ms of back-off, a start), seconds beside busy loops; far under the
/// `--shutdown-timeout` of 30 s it took before.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn a_worker_signalled_by_itself_is_replaced_and_its_clients_answered(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "1", "--watchdog", "0", "--shutdown-timeout", "30"]);
    let st = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&worker(&st, 1).expect("worker 1"), "pid") as u32;
    let from = s.log_len();
    kill(pid, libc::SIGTERM);
    // The worker drains (or, with the master quick to close its channel, is
    // already gone): a client that comes now finds no worker that takes it.
    let mut last = serde_json::Value::Null;
    let drained = eventually(IO_TIMEOUT, || {
        last = s.stats();
        worker(&last, 1).is_some_and(|w| w["state"] != "ready" || num(&w, "pid") != u64::from(pid))
    });
    assert!(drained, "worker 1 never drained after its SIGTERM: {last}");
    let began = Instant::now();
    let mut client = TcpStream::connect(s.addr()).expect("connect");
    client.set_read_timeout(Some(ANSWER_WITHIN)).expect("read timeout");
    client.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let read = client.read_to_end(&mut answer);
    assert!(
        read.is_ok() && answer.starts_with(b"HTTP/1.1 200"),
        "no answer within {ANSWER_WITHIN:?} of a client that came while worker 1 drained by itself ({read:?}, {:?} \
         after it connected): {}",
        began.elapsed(),
        String::from_utf8_lossy(&answer)
    );
    let closed = format!(
        "worker 1 (pid {pid}) is draining though the master did not ask it to (a stop signal sent to it): it takes \
         no more connections, and ends once its own are done; it is restarted then"
    );
    let (i, _) = s.wait_for_log_from(from, |l| l == closed, IO_TIMEOUT);
    s.wait_for_log_from(i, |l| l == format!("worker 1 (pid {pid}) exited with code 0"), IO_TIMEOUT);
    s.wait_for_log_from(i, |l| l.starts_with("worker 1 restarted (pid "), IO_TIMEOUT);
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_a_worker_signalled_by_itself_is_replaced_and_its_clients_answered() {
    a_worker_signalled_by_itself_is_replaced_and_its_clients_answered("rr");
}

#[test]
fn least_a_worker_signalled_by_itself_is_replaced_and_its_clients_answered() {
    a_worker_signalled_by_itself_is_replaced_and_its_clients_answered("least");
}

#[test]
fn shared_a_worker_signalled_by_itself_is_replaced_and_its_clients_answered() {
    a_worker_signalled_by_itself_is_replaced_and_its_clients_answered("shared");
}
