//! A stop's last hand-off (`rr`, `least`): requests that reached the server
//! before SIGTERM, on connections the master held for workers that lagged
//! or that waited in its listen queue, are answered `200` by the draining
//! workers, as `shared` mode's workers answer what they accept before their
//! drain begins. Before, the held ones got `503` at once and the queued ones
//! `503` once the workers' drain began (or a reset if the workers were done
//! before the master's next tick).
//!
//! Both workers are stopped (SIGSTOP) so that their batches go
//! unacknowledged: the master holds what comes next, up to `--backlog`, and
//! then leaves the rest in the kernel's listen queue. Every step waits for
//! what the stats and the metrics show.

use crate::util;

use std::time::Duration;

use util::ops::{metrics_addr, samples, scrape, value};
use util::procs::stop_between_turns;
use util::stats::{expect_worker, num};
use util::*;

/// `--backlog`: the connections the master holds before it stops accepting.
const BACKLOG: usize = 4;
/// Connections left in the kernel's listen queue (it holds `BACKLOG + 1`).
const QUEUED: usize = 3;

fn sum(stats: &serde_json::Value, key: &str) -> u64 {
    stats["workers"].as_array().map_or(0, |ws| ws.iter().map(|w| num(w, key)).sum())
}

/// A client whose one request is written (the server has its bytes).
fn client_sent(s: &Server) -> Conn {
    let mut c = s.connect();
    c.send(GET_CLOSE);
    c
}

fn held_and_queued_connections_are_served_at_a_stop(mode: &str) {
    let backlog = BACKLOG.to_string();
    let args = ["--mode", mode, "--workers", "2", "--no-pin", "--backlog", &backlog, "--metrics", "127.0.0.1:0"];
    let mut s = Server::start(&args);
    let metrics_at = metrics_addr(&s);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let pids = [1, 2].map(|id| num(&expect_worker(&ready, id), "pid") as u32);
    let guards: Vec<_> = pids.iter().map(|&pid| stop_between_turns(pid).0).collect();

    let mut clients = Vec::new();
    let mut last = serde_json::Value::Null;
    // One batch in each worker's socket, unacknowledged, and both seen lagging.
    for handed in 1..=2 {
        clients.push(client_sent(&s));
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

    // Held by the master: no worker takes, both have room. The last of them
    // makes the master stop accepting.
    for _ in 0..BACKLOG {
        clients.push(client_sent(&s));
    }
    let held = || value(&samples(&scrape(metrics_at)), "ringmaster_master_connections_held", &[]);
    assert!(eventually(Duration::from_secs(10), || held() == BACKLOG as f64), "{mode}: {BACKLOG} held");
    // In the kernel's listen queue: the master accepts no more while it holds `--backlog`.
    for _ in 0..QUEUED {
        clients.push(client_sent(&s));
    }
    last = s.stats();
    assert_eq!((sum(&last, "unacked"), sum(&last, "queued")), (2, 0), "{mode}: {last}");

    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 2 workers", IO_TIMEOUT);
    drop(guards);

    let answers: Vec<String> = clients
        .iter_mut()
        .map(|c| match c.try_read() {
            Ok(resp) if resp.status == 200 && resp.body == BODY => "200".to_string(),
            Ok(resp) => resp.status.to_string(),
            Err(e) => format!("no answer ({e})"),
        })
        .collect();
    let ok = answers.iter().filter(|a| *a == "200").count();
    eprintln!("{mode}: {} requests sent before SIGTERM: {ok} answered 200; {answers:?}", answers.len());
    assert_eq!(ok, answers.len(), "{mode}: requests sent before SIGTERM not served: {answers:?}");

    // Both parts were handed over at the stop: the held and the queued.
    let (_, line) = s.wait_for_log_from(from, |l| l.starts_with("stopping: "), IO_TIMEOUT);
    eprintln!("{mode}: {line}");
    let handed =
        format!("stopping: {QUEUED} connections taken from the listen queue; {} held connections", BACKLOG + QUEUED);
    assert!(line.starts_with(&handed) && line.ends_with(" 0 with none to go to (503)"), "{mode}: {line}");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}");
}

#[test]
fn rr_sigterm_serves_held_and_queued_connections() {
    held_and_queued_connections_are_served_at_a_stop("rr");
}

#[test]
fn least_sigterm_serves_held_and_queued_connections() {
    held_and_queued_connections_are_served_at_a_stop("least");
}
