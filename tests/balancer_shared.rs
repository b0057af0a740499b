//! `--mode shared`: every worker accepts on the inherited listening socket and
//! the kernel decides who wakes. Everything must be served; the split is
//! reported, and only what the kernel guarantees is asserted.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use util::*;

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

// --- small local helpers (candidates for tests/util) ---------------------------------

fn per_worker(stats: &serde_json::Value, key: &str) -> Vec<u64> {
    stats["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("stats without workers: {stats}"))
        .iter()
        .map(|w| w[key].as_u64().unwrap_or_else(|| panic!("worker without numeric {key}: {stats}")))
        .collect()
}

fn stats_when_idle(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let idle = eventually(Duration::from_secs(5), || {
        last = s.stats();
        per_worker(&last, "live").iter().all(|&l| l == 0)
    });
    assert!(idle, "connections still live after 5 s: {last}");
    last
}

// --- tests -------------------------------------------------------------------------

#[test]
fn shared_many_concurrent_keepalive_clients() {
    const CONNS: usize = 64;
    const REQS: usize = 20;
    let s = Server::start(&["--mode", "shared", "--workers", "4"]);
    let addr = s.addr();
    let conns: Vec<Conn> = (0..CONNS).map(|_| Conn::connect(addr)).collect();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                for _ in 0..REQS {
                    c.get_ok();
                }
                c
            })
        })
        .collect();
    let conns: Vec<Conn> = handles.into_iter().map(|h| h.join().expect("client thread")).collect();
    let stats = s.stats();
    assert_eq!(stats["mode"], "shared", "{stats}");
    assert_eq!(per_worker(&stats, "live").iter().sum::<u64>(), CONNS as u64, "{stats}");
    drop(conns);
    let stats = stats_when_idle(&s);
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
                    let mut c = Conn::connect(addr);
                    let r = c.request(GET_CLOSE);
                    check_ok(&r);
                    c.expect_closed();
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(ok.load(Ordering::Relaxed), CLIENTS * PER_CLIENT);

    let stats = stats_when_idle(&s);
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

#[test]
fn shared_stats_line_counts_what_was_sent() {
    let s = Server::start(&["--mode", "shared", "--workers", "2"]);
    let per_conn = [10usize, 9, 8, 6, 4];
    for &n in &per_conn {
        let mut c = s.connect();
        for _ in 0..n - 1 {
            c.get_ok();
        }
        check_ok(&c.request(GET_CLOSE));
        c.expect_closed();
    }
    let stats = stats_when_idle(&s);
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

/// `THREADS` clients through one worker, each making `PER_THREAD` short
/// connections and closing each one as soon as its answer has arrived, as most
/// real clients do, without waiting for the server's FIN. With `with_errors`,
/// every other connection of every other client is a malformed request: the
/// server answers 400 and closes that connection itself (half-closing first and
/// waiting for the client's FIN). Every connection must get its own answer.
///
/// (Same as in balancer_rr.rs.) Engine hazard this catches (found with these tests; the `Connection: close`
/// case was fixed by b5ddf75, the server-decided close still has it): the
/// worker half-closes with an io_uring `Shutdown` op, which the kernel runs in
/// io-wq and which looks its fd number up only when it runs. When the client's
/// FIN arrives first, the worker closes that fd number, the next connection
/// it takes gets the same number, and the late shutdown(SHUT_WR) lands on the
/// new connection: its client sees EOF instead of its response.
fn short_connections_closed_by_the_client(mode: &str, with_errors: bool) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    let s = Server::start(&["--mode", mode, "--workers", "1"]);
    let addr = s.addr();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut failed = Vec::new();
                for i in 0..PER_THREAD {
                    let bad = with_errors && t % 2 == 0 && i % 2 == 0;
                    let mut c = Conn::connect(addr);
                    c.send(if bad { b"BAD REQUEST\r\n\r\n" } else { GET_CLOSE });
                    match c.try_read() {
                        Ok(r) if bad && r.status == 400 => {}
                        Ok(r) if !bad && r.status == 200 && r.body == BODY => {}
                        Ok(r) => failed.push(format!("connection {i} (bad request: {bad}): {r:?}")),
                        Err(e) => failed.push(format!("connection {i} (bad request: {bad}): {e}")),
                    }
                    // Dropped here: closed right after the answer.
                }
                failed
            })
        })
        .collect();
    let failed: Vec<String> = handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect();
    let stats = stats_when_idle(&s);
    let total = (THREADS * PER_THREAD) as u64;
    assert!(
        failed.is_empty(),
        "{} of {total} connections did not get their answer (stats {stats}); first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(stats_totals(&stats), (total, total, 0), "{stats}");
}

#[test]
fn shared_clients_closing_right_after_the_response_all_get_it() {
    short_connections_closed_by_the_client("shared", false);
}

#[test]
fn shared_error_closes_do_not_disturb_other_connections() {
    short_connections_closed_by_the_client("shared", true);
}
