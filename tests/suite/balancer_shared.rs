//! `--mode shared`: every worker accepts on the inherited listening socket and
//! the kernel decides who wakes. Everything must be served; the split is
//! reported, and only what the kernel guarantees is asserted, except on
//! epoll, where workers take turns at the listener.

use crate::util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use util::load::{keepalive_clients, requests_then_close, short_connections_closed_by_the_client};
use util::stats::{per_worker, stats_when_settled};
use util::*;

// --- tests -------------------------------------------------------------------------

#[test]
fn shared_many_concurrent_keepalive_clients() {
    const CONNS: usize = 64;
    const REQS: usize = 20;
    let s = Server::start(&["--mode", "shared", "--workers", "4"]);
    let conns = keepalive_clients(s.addr(), CONNS, REQS);
    let stats = s.stats();
    assert_eq!(stats["mode"], "shared", "{stats}");
    assert_eq!(per_worker(&stats, "live").iter().sum::<u64>(), CONNS as u64, "{stats}");
    drop(conns);
    let stats = stats_when_settled(&s, CONNS as u64, (CONNS * REQS) as u64);
    eprintln!("shared split of 64 keep-alive connections: {:?}", per_worker(&stats, "accepted"));
    assert_eq!(stats_totals(&stats), (CONNS as u64, (CONNS * REQS) as u64, 0), "{stats}");
}

#[test]
fn shared_400_connections_from_8_clients_all_served_and_split_reported() {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 50;
    let s = Server::start(&["--mode", "shared", "--workers", "4"]);
    let addr = s.addr();
    let ok = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let ok = Arc::clone(&ok);
            thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    requests_then_close(addr, 1);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(ok.load(Ordering::Relaxed), CLIENTS * PER_CLIENT);

    let stats = stats_when_settled(&s, (CLIENTS * PER_CLIENT) as u64, (CLIENTS * PER_CLIENT) as u64);
    let split = per_worker(&stats, "accepted");
    eprintln!("shared split of 400 connections from 8 concurrent clients over 4 workers: {split:?}");
    // What the kernel guarantees: every connection is accepted exactly once, by one worker.
    assert_eq!(split.iter().sum::<u64>(), 400, "{stats}");
    assert_eq!(per_worker(&stats, "requests").iter().sum::<u64>(), 400, "{stats}");
    // Nothing more is asserted about the split: it is the kernel's choice of
    // which waiting worker wakes. On this 2-core machine, with workers 1,3 on
    // CPU 0 and 2,4 on CPU 1, runs alone gave anything from an even split to
    // one worker per CPU ([205, 0, 195, 0], most often) to a single worker
    // taking all 400 ([0, 0, 400, 0], 1 run in 20); so not even "at least two
    // workers" holds reliably. Node's cluster docs report the same of this approach.
    let serving = split.iter().filter(|&&n| n > 0).count();
    eprintln!("shared: {serving} of 4 workers accepted connections");
}

/// On epoll, workers take turns at the shared listener: `EPOLLEXCLUSIVE`
/// wakes the first waiting watch in the listener's wait queue, so without a worker
/// stepping back after a few accepts the one that registered first took
/// nearly every connection (87-94 % at 1,000 keep-alive connections; here
/// 185 of 200 one at a time). io_uring's accepts take turns by themselves
/// (each re-arms at the back): 100 and 100.
#[test]
fn shared_epoll_workers_take_turns_at_new_connections() {
    const CONNECTIONS: u64 = 200;
    let s = Server::start(&["--mode", "shared", "--workers", "2", "--no-pin", "--backend", "epoll"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    for _ in 0..CONNECTIONS {
        requests_then_close(s.addr(), 1);
    }
    let stats = stats_when_settled(&s, CONNECTIONS, CONNECTIONS);
    let split = per_worker(&stats, "accepted");
    eprintln!("shared epoll split of {CONNECTIONS} connections one at a time: {split:?}");
    assert_eq!(split.iter().sum::<u64>(), CONNECTIONS, "{stats}");
    // Turns of 16: an even split, give or take a turn or two.
    assert!(split.iter().all(|&n| n >= CONNECTIONS / 4), "one worker took most: {split:?}");
}

#[test]
fn shared_stats_line_counts_what_was_sent() {
    let s = Server::start(&["--mode", "shared", "--workers", "2"]);
    let per_conn = [10usize, 9, 8, 6, 4];
    for &n in &per_conn {
        requests_then_close(s.addr(), n);
    }
    let stats = stats_when_settled(&s, 5, 37);
    assert_eq!(stats["mode"], "shared", "{stats}");
    let ws = stats["workers"].as_array().expect("workers array");
    assert_eq!(ws.len(), 2, "{stats}");
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w["id"].as_u64(), Some(i as u64 + 1), "{stats}");
        assert!(w["pid"].as_u64().is_some(), "{stats}");
        assert!(w["cpu"].is_u64(), "{stats}");
    }
    assert_eq!(stats_totals(&stats), (5, 37, 0), "{stats}");
}

#[test]
fn shared_clients_closing_right_after_the_response_all_get_it() {
    short_connections_closed_by_the_client("shared", false);
}

#[test]
fn shared_error_closes_do_not_disturb_other_connections() {
    short_connections_closed_by_the_client("shared", true);
}
