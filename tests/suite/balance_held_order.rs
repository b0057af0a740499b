//! A connection the master holds (no worker takes it now, one may soon) goes
//! to the first worker that takes again, before connections accepted after
//! it. Found by a balancing audit (2026-12-06): with `--max-conns 1`, worker
//! 1 stopped with a batch in its socket and worker 2 full, a client C is
//! held; worker 2's connection ends, and a client E that connects 30 ms
//! later takes worker 2's room (the accept that wakes the master is routed
//! before what it holds), so C waits out the whole stall of a worker that
//! never had it (README, Balancing modes: a stalled worker costs "the
//! connections it already holds, and at most one batch in its socket"). Under
//! load this turns into held connections passed over by younger ones and
//! then refused `503` once the stalled worker's ack shows it full.
//! Failed on 5c0eee4 (C answered only after worker 1 ran again); since, an
//! accept routes what is held before the connection it took.

use crate::util;

use std::thread;
use std::time::{Duration, Instant};

use util::procs::stop_between_turns;
use util::stats::{expect_worker, num};
use util::*;

/// The start of a request's header block: a connection that sent it is busy.
const PARTIAL: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
/// Ends a [`PARTIAL`] head, asking the server to close.
const REST_CLOSE: &[u8] = b"Connection: close\r\n\r\n";
/// How long worker 1 stays stopped after C is held: far longer than worker 2
/// takes to get room and the master's tick.
const STALL: Duration = Duration::from_secs(2);

fn a_held_connection_goes_to_the_first_worker_with_room(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "2", "--no-pin", "--max-conns", "1"]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let w1 = num(&expect_worker(&ready, 1), "pid") as u32;
    let (guard, _) = stop_between_turns(w1);
    // D: a busy connection handed to worker 1, unacknowledged while it is
    // stopped (one that goes to worker 2 instead is closed and tried again).
    let mut d = None;
    for _ in 0..8 {
        let mut conn = s.connect();
        conn.send(PARTIAL);
        if eventually(Duration::from_millis(500), || num(&expect_worker(&s.stats(), 1), "unacked") == 1) {
            d = Some(conn);
            break;
        }
        drop(conn);
        assert!(eventually(IO_TIMEOUT, || num(&expect_worker(&s.stats(), 2), "live") == 0));
    }
    let _d = d.expect("no connection was handed to the stopped worker 1 in 8 tries");
    // B fills worker 2.
    let mut b = s.connect();
    b.send(PARTIAL);
    assert!(eventually(IO_TIMEOUT, || num(&expect_worker(&s.stats(), 2), "live") == 1), "B not on worker 2");
    // C: no worker takes it now; the master holds it (and counts it passed
    // over by the worker the mode's rule named).
    let passed_over =
        |stats: &serde_json::Value| (1..=2).map(|id| num(&expect_worker(stats, id), "passed_over")).sum::<u64>();
    let before = passed_over(&s.stats());
    let mut c = s.connect();
    c.send(GET_CLOSE);
    let c_sent = Instant::now();
    assert!(eventually(IO_TIMEOUT, || passed_over(&s.stats()) > before), "{mode}: C was not held");
    // Worker 2 gets room; then E connects.
    b.send(REST_CLOSE);
    assert_eq!(b.read().status, 200);
    drop(b);
    thread::sleep(Duration::from_millis(30));
    let mut e = s.connect();
    e.send(PARTIAL);
    // C, held before worker 2 had room, is answered by worker 2 while worker 1
    // is still stopped.
    c.stream().set_read_timeout(Some(STALL)).unwrap();
    let answer = c.try_read();
    let waited = c_sent.elapsed();
    drop(guard);
    match answer {
        Ok(r) => assert_eq!(r.status, 200, "{mode}: C got {} after {waited:?}", r.status),
        Err(err) => panic!(
            "{mode}: C, held while worker 1 was stopped and worker 2 full, was not answered within {waited:?} \
             ({err}) although worker 2 got room 100 ms after it came; E, 30 ms after that, took the room"
        ),
    }
    drop(e);
}

#[test]
fn rr_a_held_connection_goes_to_the_first_worker_with_room() {
    a_held_connection_goes_to_the_first_worker_with_room("rr");
}

#[test]
fn least_a_held_connection_goes_to_the_first_worker_with_room() {
    a_held_connection_goes_to_the_first_worker_with_room("least");
}
