//! Slow and silent clients are timed out (--header-timeout), idle keep-alive
//! connections are closed (--idle-timeout), busy ones are not.

mod util;

use std::thread;
use std::time::{Duration, Instant};
use util::*;

/// Generous bound for "closed within a few seconds" of a 0.5 s timeout
/// (allows a coarse, once-a-second timer).
const CLOSE_BOUND: Duration = Duration::from_secs(4);
/// A close sooner than this after the last activity means the timeout was not honoured.
const TOO_SOON: Duration = Duration::from_millis(250);

/// Waits (at most [`CLOSE_BOUND`]) for the server to close `c` without an
/// answer, and checks it did not close sooner than [`TOO_SOON`] after `start`.
fn expect_timed_out(c: &mut Conn, start: Instant) {
    c.expect_closed_within(CLOSE_BOUND);
    let took = start.elapsed();
    assert!(took >= TOO_SOON, "closed after only {took:?}");
}

#[test]
fn header_timeout_partial_request_is_closed() {
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5"]);
    let mut c = s.connect();
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    // No response, just a close.
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn header_timeout_applies_to_a_later_request_on_a_kept_connection() {
    // Keep-alive, then the start of a second request that never completes.
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5"]);
    let mut c = s.connect();
    c.get_ok();
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    expect_timed_out(&mut c, start);
}

#[test]
fn header_timeout_silent_client_is_closed() {
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5"]);
    let mut c = s.connect();
    let start = Instant::now();
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn header_timeout_trickling_client_is_closed() {
    // Slowloris: a byte every 100 ms never completes the header block; the
    // timeout counts from the start, not from the last byte.
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5"]);
    let mut c = s.connect();
    let start = Instant::now();
    let trickle =
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for b in trickle.iter() {
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
    if !closed {
        c.expect_closed_within(Duration::from_millis(100));
    }
    let took = start.elapsed();
    assert!(took < CLOSE_BOUND, "trickling client was served for {took:?}");
    s.connect().get_ok();
}

#[test]
fn header_timeout_does_not_cut_a_prompt_client() {
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5"]);
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
    let s = Server::start(&["--workers", "1", "--idle-timeout", "0.5"]);
    let mut c = s.connect();
    c.get_ok();
    let start = Instant::now();
    expect_timed_out(&mut c, start);
    s.connect().get_ok();
}

#[test]
fn idle_timeout_spares_a_busy_connection() {
    let s = Server::start(&["--workers", "1", "--idle-timeout", "0.5"]);
    let mut c = s.connect();
    let start = Instant::now();
    let mut n = 0;
    // Busy for 2.5 s (five idle timeouts), a request every 150 ms.
    while start.elapsed() < Duration::from_millis(2500) {
        c.get_ok();
        n += 1;
        thread::sleep(Duration::from_millis(150));
    }
    assert!(n >= 10);
    c.get_ok();
    // Once it goes quiet it is closed.
    c.expect_closed_within(CLOSE_BOUND);
}

#[test]
fn idle_timeout_spares_a_connection_with_a_slow_body() {
    // While the server waits for body bytes that keep coming, the connection is
    // not idle.
    let s = Server::start(&["--workers", "1", "--idle-timeout", "0.5"]);
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
    let s = Server::start(&["--workers", "1", "--header-timeout", "0.5", "--idle-timeout", "0.5"]);
    let mut silent: Vec<Conn> = (0..20).map(|_| s.connect()).collect();
    let mut idle: Vec<Conn> = (0..20).map(|_| s.connect()).collect();
    for c in idle.iter_mut() {
        c.get_ok();
    }
    for c in silent.iter_mut().chain(idle.iter_mut()) {
        c.expect_closed_within(CLOSE_BOUND);
    }
    let ok = eventually(Duration::from_secs(3), || s.stats_totals().2 == 0);
    let stats = s.stats();
    assert!(ok, "timed-out connections still counted live: {stats}");
    let (accepted, requests, _) = stats_totals(&stats);
    assert_eq!(accepted, 40, "{stats}");
    assert_eq!(requests, 20, "timeouts answer nothing: {stats}");
}
