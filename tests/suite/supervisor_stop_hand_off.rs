//! A stop's last hand-off (`rr`, `least`): requests that reached the server
//! before SIGTERM, on connections the master held for workers that lagged
//! or that waited in its listen queue, are answered `200` by the draining
//! workers, as `shared` mode's workers answer what they accept before their
//! drain begins. Before, the held ones got `503` at once and the queued ones
//! `503` once the workers' drain began (or a reset if the workers were done
//! before the master's next tick).
//!
//! Both workers are stopped (SIGSTOP) so that they lag (their first
//! connections unacknowledged, or held if their heartbeats went stale
//! first): the master holds what comes next, up to `--backlog`, and then
//! leaves the rest in the kernel's listen queue. Every step waits for
//! what the stats and the metrics show.

use crate::util;

use std::time::Duration;

use util::held::{answers, both_workers_lagging, client_sent, handed_or_held, held, sum, Lagging};
use util::ops::metrics_addr;
use util::procs::stop_between_turns;
use util::stats::{expect_worker, num, per_worker};
use util::*;

/// `--backlog`: the connections the master holds before it stops accepting.
const BACKLOG: usize = 4;
/// Connections left in the kernel's listen queue (it holds `BACKLOG + 1`).
const QUEUED: usize = 3;

fn held_and_queued_connections_are_served_at_a_stop(mode: &str) {
    let backlog = BACKLOG.to_string();
    let args = ["--mode", mode, "--workers", "2", "--no-pin", "--backlog", &backlog, "--metrics", "127.0.0.1:0"];
    let mut s = Server::start(&args);
    let metrics_at = metrics_addr(&s);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    // Two clients in the workers' sockets, unacknowledged, or held; both workers seen lagging.
    let Lagging { guards, mut clients, held: held_first } = both_workers_lagging(&s, metrics_at, &ready, mode);

    // Held by the master: no worker takes, both have room. The last of them
    // makes the master stop accepting.
    for _ in held_first..BACKLOG {
        clients.push(client_sent(&s));
    }
    assert!(eventually(Duration::from_secs(10), || held(metrics_at) == BACKLOG as f64), "{mode}: {BACKLOG} held");
    // In the kernel's listen queue: the master accepts no more while it holds `--backlog`.
    for _ in 0..QUEUED {
        clients.push(client_sent(&s));
    }
    let last = s.stats();
    let handed_first = (2 - held_first) as u64;
    assert_eq!((sum(&last, "unacked"), sum(&last, "queued")), (handed_first, 0), "{mode}: {last}");

    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 2 workers", IO_TIMEOUT);
    drop(guards);

    let answers = answers(&mut clients);
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

/// Whether worker `id` lags, as the master's routing sees it.
fn lagging(stats: &serde_json::Value, id: u64) -> bool {
    expect_worker(stats, id)["lagging"] == true
}

/// At a stop, a held connection goes to a worker whose loop turns (here
/// one that was stopped a moment ago and runs again once the stop began)
/// rather than to one that has stood still for longer, however few
/// connections the still one has: what it is handed waits until it is
/// killed at `--shutdown-timeout`, and is refused then. Until 2026-12-05
/// the fewest outstanding decided among workers that lag: a worker busy
/// with a slow handler (its acks late, its loop turning) lost to a stopped
/// one (stress run: `slow:1:20000`, worker 2 SIGSTOPped 1 s before SIGTERM:
/// 20 held connections handed to it, 503 at `--shutdown-timeout`).
fn held_connections_go_to_a_worker_that_turns_rather_than_a_still_one(mode: &str) {
    let args = ["--mode", mode, "--workers", "2", "--no-pin", "--metrics", "127.0.0.1:0"];
    let mut s = Server::start(&args);
    let metrics_at = metrics_addr(&s);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    // A keep-alive client: its worker (`busy`) has more outstanding than the other (`still`).
    let mut keep = s.connect();
    keep.get_ok();
    let mut live = Vec::new();
    let one_live = eventually(Duration::from_secs(5), || {
        live = per_worker(&s.stats(), "live");
        live.iter().sum::<u64>() == 1
    });
    assert!(one_live, "{mode}: one worker holds the keep-alive client: {live:?}");
    let (busy, still) = if live[0] == 1 { (1, 2) } else { (2, 1) };
    let pid = |id: u64| num(&expect_worker(&ready, id), "pid") as u32;

    // `still` stops, and the master sees it lag with no batch in flight:
    // its heartbeat is stale.
    let (still_guard, _) = stop_between_turns(pid(still));
    let mut last = serde_json::Value::Null;
    let stale = eventually(Duration::from_secs(10), || {
        last = s.stats();
        lagging(&last, still) && sum(&last, "unacked") == 0
    });
    assert!(stale, "{mode}: worker {still}'s heartbeat is seen stale: {last}");
    // `busy` turns (it answers), then stops with one batch in flight (or,
    // if the test ran late and its heartbeat went stale first, held): it
    // lags too, and has more outstanding than `still` either way.
    keep.get_ok();
    let (busy_guard, _) = stop_between_turns(pid(busy));
    let mut clients = vec![client_sent(&s)];
    let held_first = handed_or_held(metrics_at, 1, mode);
    let both = eventually(Duration::from_secs(10), || {
        last = s.stats();
        lagging(&last, busy) && lagging(&last, still)
    });
    assert!(both, "{mode}: both workers lag: {last}");
    assert_eq!(num(&expect_worker(&last, busy), "unacked"), 1 - held_first as u64, "{mode}: {last}");
    // Held: no worker takes.
    const HELD: usize = 3;
    for _ in held_first..HELD {
        clients.push(client_sent(&s));
    }
    assert!(eventually(Duration::from_secs(10), || held(metrics_at) == HELD as f64), "{mode}: {HELD} held");

    let from = s.log_len();
    s.signal(libc::SIGTERM);
    let (_, line) = s.wait_for_log_from(from, |l| l.starts_with("stopping: "), IO_TIMEOUT);
    eprintln!("{mode}: {line}");
    // `busy` runs again; `still` stays stopped until the answers are in.
    drop(busy_guard);
    let answers = answers(&mut clients);
    drop(still_guard);
    assert!(answers.iter().all(|a| a == "200"), "{mode}: held connections went to the stopped worker: {answers:?}");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}");
}

#[test]
fn rr_sigterm_hands_held_connections_to_a_worker_that_turns() {
    held_connections_go_to_a_worker_that_turns_rather_than_a_still_one("rr");
}

#[test]
fn least_sigterm_hands_held_connections_to_a_worker_that_turns() {
    held_connections_go_to_a_worker_that_turns_rather_than_a_still_one("least");
}
