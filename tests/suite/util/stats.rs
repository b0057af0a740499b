//! Reading the stats line (and the control socket's `status`, which has the
//! same shape): per-worker values and waiting for the counts to settle.

#![allow(dead_code)]

use std::time::Duration;

use super::load::close_request;
use super::{eventually, stats_totals, Server, IO_TIMEOUT};

/// `key` of every worker in a stats line, in worker order.
pub fn per_worker(stats: &serde_json::Value, key: &str) -> Vec<u64> {
    stats["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("stats without workers: {stats}"))
        .iter()
        .map(|w| w[key].as_u64().unwrap_or_else(|| panic!("worker without numeric {key}: {stats}")))
        .collect()
}

/// The stats object of worker `id`, if listed.
pub fn worker(stats: &serde_json::Value, id: u64) -> Option<serde_json::Value> {
    stats["workers"].as_array()?.iter().find(|w| w["id"].as_u64() == Some(id)).cloned()
}

/// The stats object of worker `id`; panics if it is not listed.
pub fn expect_worker(stats: &serde_json::Value, id: u64) -> serde_json::Value {
    worker(stats, id).unwrap_or_else(|| panic!("no worker {id} in {stats}"))
}

/// The number under `key` in `v`; panics if there is none.
pub fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no numeric {key} in {v}"))
}

/// Reads stats until every worker reports `live == 0` (the server has seen every
/// close), at most 5 s; returns that stats line.
///
/// A worker publishes its counters once per turn of its loop, and a client can
/// have its answer (and have closed) before the worker's next turn: a line
/// read then may still show the counts of before, `live` 0 included. When the
/// totals are known, [`stats_when_settled`] waits for them instead.
pub fn stats_when_idle(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let idle = eventually(Duration::from_secs(5), || {
        last = s.stats();
        per_worker(&last, "live").iter().all(|&l| l == 0)
    });
    assert!(idle, "connections still live after 5 s: {last}");
    last
}

/// Reads stats until the totals over all workers are `connections` accepted,
/// `requests` answered and none live (at most 5 s); returns that stats line.
/// Panics with the last line read if they never add up.
pub fn stats_when_settled(s: &Server, connections: u64, requests: u64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let settled = eventually(Duration::from_secs(5), || {
        last = s.stats();
        stats_totals(&last) == (connections, requests, 0)
    });
    assert!(settled, "stats never added up to {connections} connections, {requests} requests, none live: {last}");
    last
}

/// How many times routing passed each worker over (`passed_over`, in worker
/// order): a connection went to another worker, or was held, when by the
/// mode's rule it was this one's (README, "passed_over"). Only `rr` and
/// `least` count it; panics on a stats line without it.
pub fn passed_over(stats: &serde_json::Value) -> Vec<u64> {
    per_worker(stats, "passed_over")
}

/// Whether the mode's own split shows in `stats`: no worker was ever passed
/// over, so `rr` dealt exactly in turn (connection k to worker k mod N) and
/// `least` to the fewest outstanding. On a machine too busy for a worker to
/// acknowledge a batch within the grace (20 ms), or to beat its heartbeat,
/// routing legitimately skips it; then this says on stderr that `unchecked`
/// is not checked, and why, and returns false.
pub fn nobody_passed_over(stats: &serde_json::Value, unchecked: &str) -> bool {
    let passed = passed_over(stats);
    if passed.iter().all(|&n| n == 0) {
        return true;
    }
    eprintln!(
        "{unchecked} not checked: workers passed over {passed:?} times (accepted {:?})",
        per_worker(stats, "accepted")
    );
    false
}

/// [`nobody_passed_over`] for what happened between two stats lines of the
/// same server: no worker was passed over after `before` was read (the counts
/// are kept per worker id, over its restarts).
pub fn nobody_passed_over_since(before: &serde_json::Value, after: &serde_json::Value, unchecked: &str) -> bool {
    let (then, now) = (passed_over(before), passed_over(after));
    assert_eq!(then.len(), now.len(), "the workers changed between {before} and {after}");
    let since: Vec<u64> = now.iter().zip(&then).map(|(n, t)| n - t).collect();
    if since.iter().all(|&n| n == 0) {
        return true;
    }
    eprintln!(
        "{unchecked} not checked: workers passed over {since:?} times since (accepted {:?})",
        per_worker(after, "accepted")
    );
    false
}

/// Makes one-request connections one after the other, at most `at_most`,
/// until worker `id` has taken one; returns whether it did. For a worker
/// routing passed over, which still takes its turn once it keeps up. The
/// server's counts must be settled when this is called.
pub fn worker_takes_one_of(s: &Server, id: u64, at_most: usize) -> bool {
    let mut st = s.stats();
    let had = num(&expect_worker(&st, id), "accepted");
    for i in 0..at_most {
        let total = stats_totals(&st).0;
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i} for worker {id}: {e}"));
        let counted = eventually(IO_TIMEOUT, || {
            st = s.stats();
            stats_totals(&st).0 == total + 1
        });
        assert!(counted, "connection {i} for worker {id} not counted: {st}");
        if num(&expect_worker(&st, id), "accepted") > had {
            return true;
        }
    }
    false
}

/// Has this worker (a stats entry) begun to drain or finished?
pub fn stopping(w: &serde_json::Value) -> bool {
    ["draining", "stopped", "exited"].contains(&w["state"].as_str().unwrap_or(""))
}

/// Waits (at most 5 s) until the stop is under way with exactly one
/// connection left, live on a worker that is draining (holding it); every
/// other worker drains or is done. The master answered, so it runs.
pub fn wait_one_connection_held_while_draining(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let held = eventually(Duration::from_secs(5), || {
        last = s.stats();
        let ws = last["workers"].as_array().unwrap();
        let live: u64 = ws.iter().map(|w| w["live"].as_u64().unwrap()).sum();
        live == 1 && ws.iter().all(stopping) && ws.iter().all(|w| w["live"] == 0 || w["state"] == "draining")
    });
    assert!(held, "expected one connection live on a draining worker: {last}");
    last
}
