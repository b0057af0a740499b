//! Issue 8, finding 3: a full worker takes no connection while another has
//! room. With `--max-conns 100` and two workers, 200 connections are all
//! served; only when both are full is a connection refused, and then with
//! `503 Service Unavailable` and a close, not a bare reset. Room made by a
//! closed connection is used again.

use crate::util;

use std::time::Duration;

use util::*;

const MAX_CONNS: usize = 100;
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
