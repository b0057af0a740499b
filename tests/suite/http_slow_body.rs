//! Issue 8, finding 5: a body sent at one byte a second used to hold its
//! connection forever, each byte resetting the idle timer. `--body-timeout`
//! bounds it: the body has that long, plus a second per KiB that arrives, and
//! a client too slow for that gets `408 Request Timeout` and the server's close.

use crate::util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::*;

/// Sends `bytes` on a clone of `c`'s socket, one byte per `gap`, until told to stop.
fn trickle(c: &Conn, bytes: usize, gap: Duration, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let mut stream = c.stream().try_clone().expect("clone the client socket");
    thread::spawn(move || {
        use std::io::Write;
        for _ in 0..bytes {
            if stop.load(Ordering::Relaxed) || stream.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(gap);
        }
    })
}

#[test]
fn slow_body_is_timed_out_with_408() {
    let s = Server::start(&["--workers", "1", "--body-timeout", "1", "--idle-timeout", "60"]);
    let mut c = s.connect();
    c.stream().set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    // Taken before the header goes: the body's clock starts when it arrives.
    let started = Instant::now();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    let stop = Arc::new(AtomicBool::new(false));
    // One byte every 100 ms: each one is progress, none buys time.
    let sender = trickle(&c, 100_000, Duration::from_millis(100), Arc::clone(&stop));
    let resp = c.read();
    stop.store(true, Ordering::Relaxed);
    check_error(&resp, 408);
    // The worker's clock is coarse: it may act up to `worker_clock_slack` early.
    let took = started.elapsed();
    assert!(took + worker_clock_slack() >= Duration::from_secs(1), "cut before --body-timeout: {took:?}");
    c.expect_closed_within(Duration::from_secs(10));
    sender.join().expect("sender");
    s.connect().get_ok();
    // The 408 is a request answered in the worker's counts, as a 400 is.
    util::stats::stats_when_settled(&s, 2, 2);
}

#[test]
fn a_body_that_keeps_a_fair_pace_is_not_cut() {
    // 4 KiB in 16 pieces over about 1.6 s: more than the 1 s allowed at first,
    // but each KiB buys a second.
    let s = Server::start(&["--workers", "1", "--body-timeout", "1"]);
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n");
    for _ in 0..16 {
        thread::sleep(Duration::from_millis(100));
        c.send(&[b'y'; 256]);
    }
    check_ok(&c.read());
    c.get_ok();
}
