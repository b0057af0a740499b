//! Slow and silent clients are timed out (--header-timeout), idle keep-alive
//! connections are closed (--idle-timeout), busy ones are not.

use crate::util;

use std::io::{ErrorKind, Write};
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

/// A worker whose loop stands still (a handler that blocks, a stopped or
/// starved process) past a connection's deadline, while that connection's
/// client sends in time: the request is answered once the loop comes back,
/// not taken for a silence. Until 2026-12-06 the first tick after the
/// stall closed the keep-alive client whose next request came 0.8 s into
/// its 1 s idle timeout, and the one whose head ended 0.6 s into its 1 s
/// header timeout, with no answer, on both backends (the tick ran before
/// their input was read). A silent client is still closed after it.
#[test]
fn a_request_sent_in_time_while_the_worker_stood_still_is_answered() {
    // The loop sleeps 3 s, 1.5 s after the worker is ready.
    let s = Server::start_with_env(
        &["--workers", "1", "--header-timeout", "1", "--idle-timeout", "1"],
        &[("RINGMASTER_FAULT", "stall:1:3000:1500")],
    );
    let ready = Instant::now();
    s.wait_workers_ready(1, START_TIMEOUT);
    let at = |ms: u64| {
        let when = ready + Duration::from_millis(ms);
        thread::sleep(when.saturating_duration_since(Instant::now()));
    };
    at(1000);
    // Answered at 1.0 s: idle until 2.0 s.
    let mut keep_alive = s.connect();
    keep_alive.get_ok();
    // A head begun at 1.2 s: complete by 2.2 s.
    let mut slow_head = s.connect();
    slow_head.send(b"GET / HTTP/1.1\r\n");
    let mut silent = s.connect();
    // 1.8 s: the loop has stood still since 1.5 s (until 4.5 s).
    at(1800);
    keep_alive.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    slow_head.send(b"Host: a\r\n\r\n");
    let answer = keep_alive.try_read();
    assert!(
        answer.as_ref().is_ok_and(|r| r.status == 200),
        "the keep-alive client's request, sent in time: {answer:?}"
    );
    let answer = slow_head.try_read();
    assert!(answer.as_ref().is_ok_and(|r| r.status == 200), "the head ended in time: {answer:?}");
    silent.expect_closed_within(CLOSE_BOUND);
}

/// A handler that takes longer than `--idle-timeout` (here the injected
/// `slow` fault, which spends 1.5 s on each request as a slow handler
/// would): the keep-alive client it answered keeps its whole idle timeout
/// from that answer, and one whose next request came in time while the
/// worker was busy with another's is answered. Until 2026-12-06, on epoll,
/// the first was closed 0-100 ms after its answer (its idle clock counted
/// from before the handler ran), and, on both backends, the second with no
/// answer once the worker came back.
#[test]
fn a_slow_handler_costs_its_neighbours_no_deadline() {
    let s = Server::start_with_env(
        &["--workers", "1", "--header-timeout", "1", "--idle-timeout", "1"],
        &[("RINGMASTER_FAULT", "slow:1:1500000")],
    );
    s.wait_workers_ready(1, START_TIMEOUT);
    let mut a = s.connect();
    a.get_ok();
    // Half its idle timeout after its own slow answer.
    thread::sleep(Duration::from_millis(500));
    a.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let answer = a.try_read();
    assert!(answer.as_ref().is_ok_and(|r| r.status == 200), "the next request, 0.5 s after a slow answer: {answer:?}");
    // Another client's request takes the worker for 1.5 s; 0.3 s in, this
    // one's next request comes, 0.3 s into its 1 s idle timeout.
    let mut b = s.connect();
    b.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    thread::sleep(Duration::from_millis(300));
    a.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let answer = b.try_read();
    assert!(answer.as_ref().is_ok_and(|r| r.status == 200), "{answer:?}");
    let answer = a.try_read();
    assert!(
        answer.as_ref().is_ok_and(|r| r.status == 200),
        "the request sent in time while the worker was busy: {answer:?}"
    );
    // A silent client is still closed.
    let mut silent = s.connect();
    silent.expect_closed_within(CLOSE_BOUND);
}

/// A client that asks to close, never reads its large answer and trickles
/// bytes meanwhile is timed out: discarded input is no sign of a reader, so
/// only the answer's sends move the idle clock. Until 2026-12-07 each of its
/// bytes started `--idle-timeout` over, and such a client held its
/// connection for as long as it kept sending.
#[test]
fn idle_timeout_closes_a_client_that_sends_but_never_reads_its_closing_answer() {
    expect_a_non_reader_timed_out("closing", "rr", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
}

/// The same on a keep-alive connection: what it sends is queued behind the
/// answer it does not read, so it does not restart the writer's clock, and
/// at that clock's deadline the kernel's count of the bytes it has not
/// acknowledged, unmoved since the last look, shows it reads nothing (two
/// timeouts after the answer's last send progress). Until 2026-12-07 each of
/// its bytes started `--idle-timeout` over, until they filled `--max-header`
/// (a byte a minute: days), on both backends. In `rr` the kernel is asked
/// with an ioctl; in `shared` on io_uring, a direct descriptor's, through the ring.
#[test]
fn idle_timeout_closes_a_keep_alive_client_that_sends_but_never_reads_its_answer() {
    for mode in ["rr", "shared"] {
        expect_a_non_reader_timed_out("keep-alive", mode, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }
}

/// Sends `request` for a 4 MiB body on a connection with a small receive
/// window, reads nothing, and writes a byte every fifth of the idle timeout
/// until a write fails: the server must close within [`CLOSE_BOUND`].
fn expect_a_non_reader_timed_out(name: &str, mode: &str, request: &[u8]) {
    let dir = std::env::temp_dir().join(format!("ringmaster-unread-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body");
    // Far more than the client's small window and the server's send buffer take.
    std::fs::write(&file, vec![b'b'; 4 << 20]).unwrap();
    let body_file = file.to_str().unwrap();
    let s = Server::start(&["--workers", "1", "--mode", mode, "--idle-timeout", TIMEOUT_ARG, "--body-file", body_file]);
    let mut c = connect_narrow(s.addr(), 4096, None);
    c.write_all(request).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let closed = loop {
        // A fifth of the timeout between bytes: each would have restarted it.
        thread::sleep(TIMEOUT / 5);
        match c.write(b"x") {
            Ok(_) => sent += 1,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => break true,
            Err(e) => panic!("{name} ({mode}): byte {sent}: {e}"),
        }
        if start.elapsed() > CLOSE_BOUND {
            break false;
        }
    };
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        closed,
        "{name} ({mode}): a client that reads nothing was kept for {:?} while it sent {sent} bytes",
        start.elapsed()
    );
}
