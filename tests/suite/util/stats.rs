//! Reading the stats line (and the control socket's `status`, which has the
//! same shape): per-worker values and waiting for the counts to settle.

#![allow(dead_code)]

use std::time::Duration;

use super::{eventually, stats_totals, Server};

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
