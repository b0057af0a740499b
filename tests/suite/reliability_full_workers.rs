//! Issue 8, finding 3: a full worker takes no connection while another has
//! room. With `--max-conns 100` and two workers, 200 connections are all
//! served; only when both are full is a connection refused, and then with
//! `503 Service Unavailable` and a close, not a bare reset. Room made by a
//! closed connection is used again. The held connections are busy (a next
//! request begun): idle keep-alive ones would be closed to make room
//! (tests/suite/reliability_idle_reclaim.rs).

use crate::util;

use std::time::Duration;

use util::*;

const MAX_CONNS: usize = 100;
/// The start of a request's header block: a connection that sent it is busy.
const PARTIAL: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
const WORKERS: usize = 2;

fn refuses_only_when_every_worker_is_full(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "2", "--no-pin", "--max-conns", "100"]);
    s.wait_workers_ready(WORKERS, START_TIMEOUT);
    let mut held = Vec::with_capacity(MAX_CONNS * WORKERS);
    for i in 0..MAX_CONNS * WORKERS {
        let mut conn = s.connect();
        let resp = conn.request(GET);
        assert_eq!(
            resp.status,
            200,
            "{mode}: connection {i} of {} refused while a worker had room",
            MAX_CONNS * WORKERS
        );
        // A next request begun: busy, not an idle one a full worker closes for a new client.
        conn.send(PARTIAL);
        held.push(conn);
    }
    for _ in 0..10 {
        let mut conn = s.connect();
        let resp = conn.request(GET);
        check_error(&resp, 503);
        conn.expect_closed();
    }
    let stats = s.stats();
    assert_eq!(stats["refused"], 10, "{mode}: {stats}");

    // Room again: one connection closes, and the next one is served.
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut conn = s.connect();
            conn.try_send(GET).is_ok() && conn.try_read().is_ok_and(|r| r.status == 200)
        }),
        "{mode}: a freed slot is not used again"
    );
}

#[test]
fn rr_refuses_only_when_every_worker_is_full() {
    refuses_only_when_every_worker_is_full("rr");
}

#[test]
fn shared_refuses_only_when_every_worker_is_full() {
    refuses_only_when_every_worker_is_full("shared");
}

#[test]
fn least_refuses_only_when_every_worker_is_full() {
    refuses_only_when_every_worker_is_full("least");
}

/// Connections the master held while the workers' batches awaited their
/// acks (the workers stopped): once the acks show every worker full, by
/// its own count, the held ones get `503`, not a wait for as long as the
/// full workers' clients stay. Before, they were routed only when a worker
/// had room again, and kept by the master, unanswered, until then.
fn held_connections_are_refused_once_every_worker_is_full(mode: &str) {
    const MAX: usize = 2;
    const BURST: usize = 10;
    let s = Server::start(&["--mode", mode, "--workers", "2", "--no-pin", "--max-conns", "2"]);
    let ready = s.wait_workers_ready(WORKERS, START_TIMEOUT);
    let pids: Vec<u32> =
        (0..WORKERS).map(|i| ready["workers"][i]["pid"].as_u64().expect("worker pid") as u32).collect();
    let master_fds = util::procs::open_fds(s.pid());
    let stopped: Vec<_> = pids.iter().map(|&pid| util::procs::stop_between_turns(pid).0).collect();
    // The master has taken `n` connections: it holds each until a worker
    // acknowledges it, or refuses it.
    let taken = |n: usize| {
        let took = || {
            let refused = s.stats()["refused"].as_u64().unwrap_or(0) as usize;
            util::procs::open_fds(s.pid()).saturating_sub(master_fds) + refused
        };
        let all = eventually(Duration::from_secs(10), || took() >= n);
        assert!(all, "{mode}: the master took {} of {n} connections: {}", took(), s.stats());
    };
    // First as many as the workers have room for: handed over (or queued),
    // unacknowledged. Then more, while the workers' counts do not show them
    // full yet: held.
    let mut conns: Vec<Conn> = (0..MAX * WORKERS).map(|_| s.connect()).collect();
    taken(MAX * WORKERS);
    conns.extend((MAX * WORKERS..BURST).map(|_| s.connect()));
    taken(BURST);
    for c in &mut conns {
        // Answered, then busy with the next request (not idle: a full worker
        // would close an idle one for a held connection).
        c.send(&[GET, PARTIAL].concat());
    }
    drop(stopped);
    let mut answers = Vec::with_capacity(BURST);
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.try_read().unwrap_or_else(|e| panic!("{mode}: connection {i} got no answer: {e}; {}", s.stats()));
        answers.push(r.status);
    }
    let served = answers.iter().filter(|&&status| status == 200).count();
    let refused = answers.iter().filter(|&&status| status == 503).count();
    assert_eq!((served, refused), (MAX * WORKERS, BURST - MAX * WORKERS), "{mode}: answers {answers:?}");
}

#[test]
fn rr_refuses_held_connections_once_every_worker_is_full() {
    held_connections_are_refused_once_every_worker_is_full("rr");
}

#[test]
fn least_refuses_held_connections_once_every_worker_is_full() {
    held_connections_are_refused_once_every_worker_is_full("least");
}
