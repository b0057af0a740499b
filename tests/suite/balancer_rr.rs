//! `--mode rr`: the master accepts and hands each connection to the next
//! worker in turn over SCM_RIGHTS. Exact fairness, keep-alive and pipelining
//! through the hand-off, and a stats line whose counts match what was sent.

use crate::util;

use std::time::Duration;
use util::load::{keepalive_clients, requests_then_close, short_connections_closed_by_the_client};
use util::stats::{nobody_passed_over, per_worker, stats_when_settled};
use util::*;

const HEAD: &[u8] = b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// --- tests -------------------------------------------------------------------------

#[test]
fn rr_many_concurrent_keepalive_clients() {
    const CONNS: usize = 64;
    const REQS: usize = 20;
    let s = Server::start(&["--mode", "rr", "--workers", "4"]);
    // The split is exact only over workers that are all ready.
    s.wait_workers_ready(4, Duration::from_secs(5));
    // Every connection is opened first, so all 64 are live at once, then they run in parallel.
    let conns = keepalive_clients(s.addr(), CONNS, REQS);
    let stats = s.stats();
    assert_eq!(per_worker(&stats, "live").iter().sum::<u64>(), CONNS as u64, "all 64 still open: {stats}");
    drop(conns);
    let stats = stats_when_settled(&s, CONNS as u64, (CONNS * REQS) as u64);
    // Whoever took a connection answered all of its requests.
    assert_eq!(per_worker(&stats, "requests"), times(&per_worker(&stats, "accepted"), REQS), "{stats}");
    // rr hands out strictly in turn while every worker takes: 64
    // connections over 4 workers is 16 each. On a machine too busy for a
    // worker to acknowledge a batch within the grace (20 ms, well before
    // the master logs a lag), rr passes it over when its turn comes, and
    // counts that: then only the totals above hold.
    if nobody_passed_over(&stats, "the 16-each split") {
        assert_eq!(per_worker(&stats, "accepted"), vec![16; 4], "{stats}");
    }
}

#[test]
fn rr_400_sequential_connections_land_100_on_each_of_4_workers() {
    let s = Server::start(&["--mode", "rr", "--workers", "4"]);
    // The split is exact only over workers that are all ready.
    s.wait_workers_ready(4, Duration::from_secs(5));
    for _ in 0..400 {
        requests_then_close(s.addr(), 1);
    }
    let stats = stats_when_settled(&s, 400, 400);
    eprintln!("rr split of 400 sequential connections: {:?}", per_worker(&stats, "accepted"));
    // One request per connection, answered where it was taken.
    assert_eq!(per_worker(&stats, "requests"), per_worker(&stats, "accepted"), "{stats}");
    // Exactly in turn while no worker was passed over (see the test above).
    if nobody_passed_over(&stats, "the 100-each split") {
        assert_eq!(per_worker(&stats, "accepted"), vec![100; 4], "{stats}");
    }
}

#[test]
fn rr_pipelined_requests_through_the_hand_off_answered_in_order() {
    const N: usize = 50;
    let s = Server::start(&["--mode", "rr", "--workers", "4"]);
    // The split is exact only over workers that are all ready.
    s.wait_workers_ready(4, Duration::from_secs(5));
    // A mix of GET and HEAD: HEAD answers carry no body, so any reordering
    // breaks the framing (a body would be read as the next status line).
    let heads: Vec<bool> = (0..N).map(|i| i % 3 == 1 || i % 7 == 0).collect();
    let mut batch = Vec::new();
    for &h in &heads {
        batch.extend_from_slice(if h { HEAD } else { GET });
    }
    // Four connections: one handed to each worker while none is passed over;
    // the answers are checked per connection, wherever it went.
    let mut conns: Vec<Conn> = (0..4).map(|_| s.connect()).collect();
    for c in &mut conns {
        c.send(&batch);
    }
    for c in &mut conns {
        c.read_ok_answers(&heads);
        // Exactly N answers: nothing more, and the connection still works.
        c.expect_silent_open(Duration::from_millis(200));
        c.get_ok();
    }
    // A request is counted once its answer is sent, and published on the
    // worker's next loop turn: the client can see the answer a moment earlier.
    let mut stats = serde_json::Value::Null;
    let counted = eventually(Duration::from_secs(2), || {
        stats = s.stats();
        stats_totals(&stats) == (4, 4 * (N as u64 + 1), 4)
    });
    assert!(counted, "4 connections, each with {} requests answered, still open: {stats}", N + 1);
    // Every worker answered all the requests of each connection it took.
    assert_eq!(per_worker(&stats, "requests"), times(&per_worker(&stats, "accepted"), N + 1), "{stats}");
    if nobody_passed_over(&stats, "one connection on each worker") {
        assert_eq!(per_worker(&stats, "accepted"), vec![1; 4], "{stats}");
    }
}

#[test]
fn rr_stats_line_is_json_and_counts_what_was_sent() {
    let s = Server::start(&["--mode", "rr", "--workers", "4"]);
    // The split is exact only over workers that are all ready.
    s.wait_workers_ready(4, Duration::from_secs(5));
    // 37 requests over 5 connections: 10 + 9 + 8 + 6 + 4, the last one on each
    // connection with `Connection: close`.
    let per_conn = [10usize, 9, 8, 6, 4];
    assert_eq!(per_conn.iter().sum::<usize>(), 37);
    for &n in &per_conn {
        requests_then_close(s.addr(), n);
    }
    let stats = stats_when_settled(&s, 5, 37);
    check_stats_shape(&stats, "rr", 4);
    assert_eq!(stats_totals(&stats), (5, 37, 0), "{stats}");
    // In turn: connections 1..5 go to workers 1,2,3,4,1 (unless one was passed over).
    if nobody_passed_over(&stats, "the in-turn split of 5 connections") {
        assert_eq!(per_worker(&stats, "accepted"), vec![2, 1, 1, 1], "{stats}");
        assert_eq!(per_worker(&stats, "requests"), vec![10 + 4, 9, 8, 6], "{stats}");
    }

    // The pids in the stats line are the workers the log announced, ids 1..=4.
    let mut logged: Vec<(u32, u32)> = s.log().iter().filter_map(|l| parse_worker_started(l)).collect();
    logged.sort_unstable();
    let in_stats: Vec<(u32, u32)> = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_u64().unwrap() as u32, w["pid"].as_u64().unwrap() as u32))
        .collect();
    assert_eq!(in_stats, logged, "stats {stats} vs log");
}

/// `counts`, each multiplied by `by`: the requests of workers whose every
/// connection carried `by` of them.
fn times(counts: &[u64], by: usize) -> Vec<u64> {
    counts.iter().map(|&n| n * by as u64).collect()
}

/// The documented keys with the right types: mode, and per worker
/// id/pid/cpu/accepted/requests/live.
fn check_stats_shape(stats: &serde_json::Value, mode: &str, workers: usize) {
    assert_eq!(stats["mode"], mode, "{stats}");
    let ws = stats["workers"].as_array().unwrap_or_else(|| panic!("workers is not an array: {stats}"));
    assert_eq!(ws.len(), workers, "{stats}");
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w["id"].as_u64(), Some(i as u64 + 1), "ids are 1..=N in order: {stats}");
        assert!(w["pid"].as_u64().is_some_and(|p| p > 1), "pid: {stats}");
        assert!(w["cpu"].is_u64(), "cpu is a number when pinned: {stats}");
        for key in ["accepted", "requests", "live"] {
            assert!(w[key].is_u64(), "{key}: {stats}");
        }
    }
}

#[test]
fn rr_clients_closing_right_after_the_response_all_get_it() {
    short_connections_closed_by_the_client("rr", false);
}

#[test]
fn rr_error_closes_do_not_disturb_other_connections() {
    short_connections_closed_by_the_client("rr", true);
}
