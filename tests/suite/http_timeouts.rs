//! Slow and silent clients are timed out (--header-timeout), idle keep-alive
//! connections are closed (--idle-timeout), busy ones are not.

use crate::util;

use std::thread;
use std::time::{Duration, Instant};
use util::*;

/// The `--header-timeout` / `--idle-timeout` every test here sets ...
const TIMEOUT_ARG: &str = "0.5";
/// ... as a Duration.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Bound for "closed once the timeout has passed": the worker checks deadlines
/// every 100 ms; the rest is room for a busy machine (a liveness bound, not a
/// measure of speed: seconds beyond the longest timeout here, 1.5 s).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// The soonest a close may come after the last activity if the timeout is
/// honoured: [`TIMEOUT`], less what the worker's clock cannot see
/// ([`worker_clock_slack`]). The tests take their `start` before the client
/// does what starts the server's clock (connect, send), so that the
/// client's measure is never the shorter one.
fn earliest_close() -> Duration {
    TIMEOUT - worker_clock_slack()
}

/// Waits (at most [`CLOSE_BOUND`]) for the server to close `c` without an
/// answer, and checks it did not close before the timeout ran out after
/// `start` (taken before the last activity), up to the worker's clock
/// resolution.
fn expect_timed_out(c: &mut Conn, start: Instant) {
    c.expect_closed_within(CLOSE_BOUND);
    let took = start.elapsed();
    let earliest = earliest_close();
    assert!(took >= earliest, "closed after only {took:?}, before the {TIMEOUT:?} timeout (earliest {earliest:?})");
}

#[test]
fn header_timeout_partial_request_is_closed() {
    let s = Server::start(&["--workers", "1", "--header-timeout", TIMEOUT_ARG]);
    // The header clock starts when the worker takes the connection.
    let start = Instant::now();
    let mut c = s.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    // No response, just a close.
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn header_timeout_applies_to_a_later_request_on_a_kept_connection() {
    // Keep-alive, then the start of a second request that never completes.
    let s = Server::start(&["--workers", "1", "--header-timeout", TIMEOUT_ARG]);
    let mut c = s.connect();
    c.get_ok();
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    expect_timed_out(&mut c, start);
}

#[test]
fn header_timeout_silent_client_is_closed() {
    let s = Server::start(&["--workers", "1", "--header-timeout", TIMEOUT_ARG]);
    let start = Instant::now();
    let mut c = s.connect();
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn header_timeout_trickling_client_is_closed() {
    // Slowloris: a byte every 100 ms never completes the header block; the
    // timeout counts from the start, not from the last byte. The bytes keep
    // coming until the close or [`CLOSE_BOUND`], whichever is first.
    let s = Server::start(&["--workers", "1", "--header-timeout", TIMEOUT_ARG]);
    let mut c = s.connect();
    let start = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    let mut closed = false;
    for b in head.iter().chain(std::iter::repeat(&b'a')) {
        if c.try_send(std::slice::from_ref(b)).is_err() {
            closed = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
        if start.elapsed() > CLOSE_BOUND {
            break;
        }
        // Check without blocking whether the server closed already.
        c.r.get_ref().set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let res = std::io::Read::read(c.r.get_mut(), &mut buf);
        c.r.get_ref().set_nonblocking(false).unwrap();
        match res {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                panic!("unexpected response bytes to an incomplete request: {:?}", String::from_utf8_lossy(&buf[..n]))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let took = start.elapsed();
    assert!(closed, "trickling client was served for {took:?}");
    s.connect().get_ok();
}

#[test]
fn header_timeout_does_not_cut_a_prompt_client() {
    let s = Server::start(&["--workers", "1", "--header-timeout", TIMEOUT_ARG]);
    let mut c = s.connect();
    // Complete requests, spread over more than the header timeout in total.
    for _ in 0..5 {
        c.get_ok();
        thread::sleep(Duration::from_millis(200));
    }
    c.get_ok();
}

#[test]
fn idle_timeout_closes_idle_keepalive_connection() {
    let s = Server::start(&["--workers", "1", "--idle-timeout", TIMEOUT_ARG]);
    let mut c = s.connect();
    // The idle clock starts when the answer has gone out.
    let start = Instant::now();
    c.get_ok();
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn idle_timeout_spares_a_busy_connection() {
    // A timeout of its own, far above the gaps between requests: on a busy
    // machine this thread may sleep much longer than it asks to (over 1.5 s
    // once, with CPU burners beside the suite).
    let s = Server::start(&["--workers", "1", "--idle-timeout", "4"]);
    let mut c = s.connect();
    let start = Instant::now();
    let mut n = 0;
    // Busy for 9 s (more than two idle timeouts), a request every 100 ms.
    while start.elapsed() < Duration::from_millis(9000) {
        c.get_ok();
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
    assert!(n >= 3);
    c.get_ok();
    // Once it goes quiet it is closed.
    c.expect_closed_within(CLOSE_BOUND);
}

#[test]
fn idle_timeout_spares_a_connection_with_a_slow_body() {
    // While the server waits for body bytes that keep coming, the connection is
    // not idle.
    let s = Server::start(&["--workers", "1", "--idle-timeout", TIMEOUT_ARG]);
    let mut c = s.connect();
    c.get_ok();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    for _ in 0..12 {
        thread::sleep(Duration::from_millis(150));
        c.send(b"x");
    }
    check_ok(&c.read());
    c.get_ok();
}

#[test]
fn timeouts_release_connections_in_stats() {
    // Each idle connection's request follows its connect at once, within a
    // header timeout that leaves room for a busy machine; then it idles out.
    let s = Server::start(&["--workers", "1", "--header-timeout", "1.5", "--idle-timeout", TIMEOUT_ARG]);
    let mut idle: Vec<Conn> = (0..20)
        .map(|_| {
            let mut c = s.connect();
            c.get_ok();
            c
        })
        .collect();
    let mut silent: Vec<Conn> = (0..20).map(|_| s.connect()).collect();
    for c in silent.iter_mut().chain(idle.iter_mut()) {
        c.expect_closed_within(CLOSE_BOUND);
    }
    let ok = eventually(IO_TIMEOUT, || s.stats_totals().2 == 0);
    let stats = s.stats();
    assert!(ok, "timed-out connections still counted live: {stats}");
    let (accepted, requests, _) = stats_totals(&stats);
    assert_eq!(accepted, 40, "{stats}");
    assert_eq!(requests, 20, "timeouts answer nothing: {stats}");
}
