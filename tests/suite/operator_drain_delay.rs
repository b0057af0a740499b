//! `--drain-delay` with `--health-path`: after SIGTERM (or `stop`) every
//! worker is a lame duck — its health path answers `503 draining` — while
//! it still accepts and serves, for the delay, in every mode (in `rr` and
//! `least` the master skips a lame duck only for a worker that is not one:
//! during the delay there is none, and they all take connections as before);
//! then the stop proceeds as without it. A second request during the delay
//! cuts it short.

use crate::util;

use std::time::{Duration, Instant};

use util::control::{control_path, ctl};
use util::stats::{nobody_passed_over, per_worker, stats_when_settled};
use util::*;

/// `GET /healthz` on a new connection: (status, body).
fn health(s: &Server) -> (u16, String) {
    let mut c = s.connect();
    let resp = c.request(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n");
    (resp.status, resp.body_str())
}

/// The delay of [`health_turns_503_for_the_delay_while_requests_succeed_then_the_drain`]:
/// its checks (ten requests and a stats read) must all run within it, which
/// takes well under a second on a quiet machine, but the suite shares two
/// cores with some 80 tests at once.
const DELAY_S: u64 = 10;

#[test]
fn health_turns_503_for_the_delay_while_requests_succeed_then_the_drain() {
    let delay = DELAY_S.to_string();
    let s = Server::start(&["--workers", "2", "--health-path", "/healthz", "--drain-delay", &delay]);
    s.wait_workers_ready(2, START_TIMEOUT);
    for _ in 0..2 {
        assert_eq!(health(&s), (200, "ready\n".to_string()), "both workers ready (rr: one probe each)");
    }
    let mut keep = s.connect();
    keep.get_ok();
    let from = s.log_len();
    // Taken before the signal: the master's delay starts after it.
    let asked = Instant::now();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with(&format!("SIGTERM received: lame duck for {DELAY_S}.0 s")), IO_TIMEOUT);
    // Every worker says it drains; every request is still answered, on new
    // connections and on one that was open.
    for _ in 0..4 {
        assert_eq!(health(&s), (503, "draining\n".to_string()));
        s.connect().get_ok();
    }
    keep.get_ok();
    let stats = s.stats();
    let checked = asked.elapsed();
    assert!(checked < Duration::from_secs(DELAY_S), "the checks ran within the delay: {checked:?}");
    for w in stats["workers"].as_array().unwrap() {
        assert_eq!((w["state"].as_str(), w["lame_duck"].as_bool()), (Some("ready"), Some(true)), "{stats}");
    }
    // Then the stop as usual: drained, exit 0, no sooner than the delay.
    let over = s.wait_for_log_from(
        from,
        |l| l.starts_with("drain delay over: stopping 2 workers"),
        Duration::from_secs(DELAY_S + 20),
    );
    // Give or take the master's clock: 100 ms.
    let waited = asked.elapsed() + Duration::from_millis(100);
    assert!(waited >= Duration::from_secs(DELAY_S), "the drain waited for the delay: {waited:?} ({over:?})");
    keep.expect_closed();
    let mut s = s;
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// During the delay every worker is a lame duck, and every mode still deals
/// them new connections: none is held for a worker that is not one, and
/// `rr` still deals them in turn (while none is passed over).
fn every_worker_serves_through_the_delay(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "2", "--health-path", "/healthz", "--drain-delay", "60"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("SIGTERM received: lame duck for 60.0 s"), IO_TIMEOUT);
    const ROUNDS: u64 = 4;
    for _ in 0..ROUNDS {
        assert_eq!(health(&s), (503, "draining\n".to_string()), "{mode}");
        s.connect().get_ok();
    }
    // Two connections a round, each with one request: every one answered by a worker.
    let stats = stats_when_settled(&s, 2 * ROUNDS, 2 * ROUNDS);
    assert_eq!(stats["refused"].as_u64(), Some(0), "{mode}: {stats}");
    if mode == "rr" && nobody_passed_over(&stats, "the in-turn split to lame ducks") {
        assert_eq!(per_worker(&stats, "accepted"), vec![ROUNDS, ROUNDS], "rr deals in turn to lame ducks too: {stats}");
    }
    // A second SIGTERM cuts the minute short.
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("SIGTERM received during the drain delay"), IO_TIMEOUT);
    let mut s = s;
    assert!(s.wait_exit(Duration::from_secs(10)).success(), "{mode}");
}

#[test]
fn rr_serves_through_the_delay() {
    every_worker_serves_through_the_delay("rr");
}

#[test]
fn least_serves_through_the_delay() {
    every_worker_serves_through_the_delay("least");
}

#[test]
fn shared_serves_through_the_delay() {
    every_worker_serves_through_the_delay("shared");
}

#[test]
fn reuseport_serves_through_the_delay() {
    every_worker_serves_through_the_delay("reuseport");
}

#[test]
fn stop_says_the_delay_and_a_second_sigterm_cuts_it_short() {
    let path = control_path("drain", "second");
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let s = Server::start(&["--workers", "1", "--health-path", "/healthz", "--drain-delay", "60", "--control", p]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let (code, reply, _) = ctl(&path, &["stop"]);
    assert_eq!((code, reply.as_str()), (0, "ok stopping after a drain delay of 60.0 s"));
    s.wait_for_log(|l| l.starts_with("stop command received: lame duck for 60.0 s"), IO_TIMEOUT);
    assert_eq!(health(&s).0, 503);
    s.connect().get_ok();
    let (code, reply, _) = ctl(&path, &["reload"]);
    assert_eq!(
        (code, reply.as_str()),
        (1, "error: this master is stopping (a stop command or signal came; its --drain-delay too) and will exit"),
        "no reload during the delay"
    );
    let asked = Instant::now();
    s.signal(libc::SIGTERM);
    s.wait_for_log(|l| l.starts_with("SIGTERM received during the drain delay: stopping 1 worker now"), IO_TIMEOUT);
    let mut s = s;
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    assert!(asked.elapsed() < Duration::from_secs(10), "not the whole minute");
    let _ = std::fs::remove_file(&path);
}
