//! Connections the master holds for workers that lag: what the tests of a
//! stop's and an upgrade's last hand-off (`rr`, `least`) set up and read.

use std::net::SocketAddr;
use std::time::Duration;

use super::ops::{samples, scrape, value};
use super::procs::{stop_between_turns, ContinueOnDrop};
use super::stats::{expect_worker, num};
use super::{eventually, Conn, Server, BODY, GET_CLOSE};

/// `key` summed over the workers of a stats line.
pub fn sum(stats: &serde_json::Value, key: &str) -> u64 {
    stats["workers"].as_array().map_or(0, |ws| ws.iter().map(|w| num(w, key)).sum())
}

/// A client whose one request is written (the server has its bytes).
pub fn client_sent(s: &Server) -> Conn {
    let mut c = s.connect();
    c.send(GET_CLOSE);
    c
}

/// The connections the master holds, from its metrics page.
pub fn held(metrics_at: SocketAddr) -> f64 {
    value(&samples(&scrape(metrics_at)), "ringmaster_master_connections_held", &[])
}

/// Each client's answer: `200` (with the page), another status, or why none came.
pub fn answers(clients: &mut [Conn]) -> Vec<String> {
    clients
        .iter_mut()
        .map(|c| match c.try_read() {
            Ok(resp) if resp.status == 200 && resp.body == BODY => "200".to_string(),
            Ok(resp) => resp.status.to_string(),
            Err(e) => format!("no answer ({e})"),
        })
        .collect()
}

/// Stops both workers of `s` (ready as `ready` shows) between loop turns,
/// hands each a connection it does not acknowledge, and waits until the
/// master sees both lag: what comes next is held. The guards continue the
/// workers when dropped; the clients have their requests written.
pub fn both_workers_lagging(s: &Server, ready: &serde_json::Value, mode: &str) -> (Vec<ContinueOnDrop>, Vec<Conn>) {
    let pids = [1, 2].map(|id| num(&expect_worker(ready, id), "pid") as u32);
    let guards: Vec<_> = pids.iter().map(|&pid| stop_between_turns(pid).0).collect();
    let mut clients = Vec::new();
    let mut last = serde_json::Value::Null;
    for handed in 1..=2 {
        clients.push(client_sent(s));
        let seen = eventually(Duration::from_secs(10), || {
            last = s.stats();
            sum(&last, "unacked") == handed
        });
        assert!(seen, "{mode}: connection {handed} handed to a stopped worker: {last}");
    }
    let lagging = eventually(Duration::from_secs(10), || {
        last = s.stats();
        last["workers"].as_array().is_some_and(|ws| ws.iter().all(|w| w["lagging"] == true))
    });
    assert!(lagging, "{mode}: both stopped workers lag: {last}");
    (guards, clients)
}
