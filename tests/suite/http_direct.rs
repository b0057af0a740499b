//! Issue 9: on io_uring, the connections a worker's ring accepts itself
//! (`shared`, `reuseport`) are direct descriptors, indexes in the ring's own
//! table. They stay out of the process's descriptor table, are closed when
//! their clients go, and an error reply's half-close (a ring op on the
//! index, run later by the kernel) never reaches the next connection to get
//! that index.

use crate::util;

use std::time::Duration;

use util::procs::{open_fds, stop_between_turns};
use util::sockets::close_waits_on_port;
use util::*;

/// One uring worker in `mode`, and its pid.
fn one_worker(mode: &str) -> (Server, u32) {
    let s = Server::start(&["--backend", "uring", "--mode", mode, "--workers", "1", "--no-pin"]);
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = stats["workers"][0]["pid"].as_u64().expect("worker pid") as u32;
    (s, pid)
}

fn accepted_connections_are_direct(mode: &str) {
    const CONNECTIONS: usize = 40;
    let (s, worker) = one_worker(mode);
    let before = open_fds(worker);
    let mut conns: Vec<Conn> = (0..CONNECTIONS).map(|_| s.connect()).collect();
    for c in &mut conns {
        c.get_ok();
    }
    let stats = stats_when_live(&s, CONNECTIONS as u64);
    let held = open_fds(worker);
    assert!(
        held < before + CONNECTIONS / 2,
        "{mode}: the worker holds {held} descriptors with {CONNECTIONS} connections open, {before} before; {stats}"
    );
    // ...and closes them when the clients go (a wrong close would leave
    // them in CLOSE_WAIT, or close a descriptor of the process instead).
    drop(conns);
    let port = s.addr().port();
    assert!(
        eventually(Duration::from_secs(30), || close_waits_on_port(port) == 0),
        "{mode}: {} connections stay in CLOSE_WAIT after their clients closed",
        close_waits_on_port(port)
    );
    assert_eq!(open_fds(worker), before, "{mode}: the worker's descriptors after the clients closed");
    s.connect().get_ok();
}

/// A burst that waited in the listen queue while the worker was stopped,
/// across its tick, is the ring's to take, as direct descriptors: the
/// tick's plain accepts are for a queue the ring's own accepts leave
/// waiting (a wake-up gone astray), not for one they are taking. Before,
/// the tick took whatever waited, as plain descriptors.
fn a_queued_burst_is_taken_direct(mode: &str) {
    const CONNECTIONS: usize = 40;
    let (s, worker) = one_worker(mode);
    let before = open_fds(worker);
    let (stopped, _) = stop_between_turns(worker);
    let mut conns: Vec<Conn> = (0..CONNECTIONS).map(|_| s.connect()).collect();
    // Past the worker's tick (100 ms): it comes due with the burst waiting.
    std::thread::sleep(Duration::from_millis(250));
    drop(stopped);
    for c in &mut conns {
        c.get_ok();
    }
    let stats = stats_when_live(&s, CONNECTIONS as u64);
    let held = open_fds(worker);
    assert!(
        held <= before + 2,
        "{mode}: the worker holds {held} descriptors with {CONNECTIONS} connections open, {before} before; {stats}"
    );
}

/// The stats line once the worker counts `live` connections.
fn stats_when_live(s: &Server, live: u64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = eventually(Duration::from_secs(5), || {
        last = s.stats();
        last["workers"][0]["live"].as_u64() == Some(live)
    });
    assert!(reached, "the worker never counted {live} live connections: {last}");
    last
}

#[test]
fn shared_ring_accepts_direct_descriptors_and_closes_them() {
    accepted_connections_are_direct("shared");
}

#[test]
fn reuseport_ring_accepts_direct_descriptors_and_closes_them() {
    accepted_connections_are_direct("reuseport");
}

#[test]
fn error_half_close_on_a_direct_descriptor_reaches_only_its_connection() {
    const ROUNDS: usize = 200;
    let (s, _) = one_worker("shared");
    let mut steady = s.connect();
    for round in 0..ROUNDS {
        // An error whose client has already finished writing: the worker
        // answers 400, half-closes and closes in one loop turn, while the
        // next connection arrives and may take the index just freed.
        let mut bad = s.connect();
        let _ = bad.try_send(b"NOT HTTP\r\n\r\n");
        bad.shutdown_write();
        let mut next = s.connect();
        let r = bad.try_read().unwrap_or_else(|e| panic!("round {round}: expected 400, reading failed: {e}"));
        check_error(&r, 400);
        bad.expect_closed();
        // The next connection and the one open all along are answered and
        // stay open: the half-close was not run on them.
        for _ in 0..2 {
            let r = next.try_send(GET).and_then(|()| next.try_read());
            check_ok(&r.unwrap_or_else(|e| panic!("round {round}: the next connection: {e}")));
        }
        steady.get_ok();
    }
    let port = s.addr().port();
    drop(steady);
    assert!(
        eventually(Duration::from_secs(30), || close_waits_on_port(port) == 0),
        "{} connections stay in CLOSE_WAIT",
        close_waits_on_port(port)
    );
}

#[test]
fn shared_ring_takes_a_queued_burst_as_direct_descriptors() {
    a_queued_burst_is_taken_direct("shared");
}

#[test]
fn reuseport_ring_takes_a_queued_burst_as_direct_descriptors() {
    a_queued_burst_is_taken_direct("reuseport");
}
