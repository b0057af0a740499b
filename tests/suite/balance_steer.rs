//! `--mode reuseport --steer load` through the real binary: an eBPF program
//! picks each connection's listener by the load the master writes and what
//! waits unaccepted, which it counts with the workers (the stats line shows
//! every connection sent and accepted, nothing left waiting). A stopped
//! worker is left with a few of 8 churning clients (what the program sent
//! it before what waits there counted), is marked stalled and then gets no
//! new connection (those sent to it before wait for it, counted as waiting,
//! and are served once it runs again); a scale-down under churn fails no request; and a
//! master that may not load BPF programs falls back to the hash (saying
//! why), unless `--steer load` was asked for, which is then an error.
//! Loading BPF needs root: without it the steering tests say so and pass.

use crate::util;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use util::control::{control_path, status};
use util::load::{close_request, patient_churn, scale_down_4_to_1_under_churn};
use util::procs::{kill, run_to_exit};
use util::sockets::{accept_queue, socket_inode};
use util::stats::{expect_worker, num, stats_when_idle};
use util::*;

/// One loaded server at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when this process may load BPF programs (the tests run as root).
fn may_steer() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: loading BPF programs needs root");
    }
    root
}

/// What the stats line says the program sees for worker `id`.
fn steer_of(stats: &serde_json::Value, id: u64) -> serde_json::Value {
    expect_worker(stats, id)["steer"].clone()
}

/// A count the stats line shows for worker `id` under `--steer load`.
fn steer_of_key(stats: &serde_json::Value, id: u64, key: &str) -> u64 {
    num(&expect_worker(stats, id), key)
}

/// A server steering by load over 2 workers, both ready and steered to
/// (until the master has seen them ready, the kernel's hash places
/// connections); the stats line that showed them ready.
fn two_steered_workers() -> (Server, serde_json::Value) {
    let s = Server::start(&["--mode", "reuseport", "--steer", "load", "--workers", "2", "--no-pin"]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let available = eventually(Duration::from_secs(10), || [1, 2].iter().all(|&id| steer_of(&s.stats(), id).is_u64()));
    assert!(available, "ready workers are available: {}", s.stats());
    (s, ready)
}

#[test]
fn steer_load_counts_every_connection_sent_and_accepted() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let (s, _) = two_steered_workers();
    const CONNECTIONS: u64 = 200;
    for i in 0..CONNECTIONS {
        close_request(s.addr()).unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
    // Every connection was sent by the program and counted by the worker that took it.
    let stats = stats_when_idle(&s);
    for id in [1, 2] {
        let (steered, accepted) = (steer_of_key(&stats, id, "steered"), steer_of_key(&stats, id, "accepted"));
        assert_eq!((steered, steer_of_key(&stats, id, "waiting")), (accepted, 0), "worker {id}: {stats}");
    }
    let total: u64 = [1, 2].iter().map(|&id| steer_of_key(&stats, id, "steered")).sum();
    assert_eq!(total, CONNECTIONS, "{stats}");
}

/// Clients churning while a worker is stopped (`patient_churn`'s).
const CLIENTS: usize = 8;
/// The most of them that may be left waiting on the stopped worker: what
/// the program sent it in the grace before what waits there counted. (When
/// the program saw only the master's 5 ms samples, 7 or 8 of 8 were.)
const STUCK_MAX: u64 = 5;

#[test]
fn steer_load_a_stopped_worker_gets_no_new_connection() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let (s, ready) = two_steered_workers();
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    stats_when_idle(&s);
    kill(victim, libc::SIGSTOP);
    let load = patient_churn(s.addr(), Duration::from_secs(15));
    let marked = eventually(Duration::from_secs(10), || steer_of(&s.stats(), 2) == "stalled");
    assert!(marked, "the stopped worker was never marked stalled: {}", s.stats());
    // A handshake the program steered to worker 2 before may still be
    // completing (the queue counts it then): look after a first round.
    for i in 0..50 {
        close_request(s.addr()).unwrap_or_else(|e| panic!("fresh connection {i} with worker 2 stopped: {e}"));
    }
    let queued = accept_queue(listener).unwrap_or(0);
    assert!(queued <= STUCK_MAX, "{queued} of {CLIENTS} clients' connections wait on the stopped worker");
    let counted = eventually(Duration::from_secs(5), || steer_of_key(&s.stats(), 2, "waiting") == queued);
    assert!(counted, "worker 2's waiting count is not its queue of {queued}: {}", s.stats());
    for i in 0..300 {
        close_request(s.addr()).unwrap_or_else(|e| panic!("fresh connection {i} with worker 2 stopped: {e}"));
    }
    let queued_after = accept_queue(listener).unwrap_or(0);
    eprintln!("stopped worker's queue: {queued} of {CLIENTS} once marked, {queued_after} after 300 more");
    assert_eq!(queued_after, queued, "a new connection reached the stopped worker");
    // Let it go: what waited in its queue is served, nothing fails.
    kill(victim, libc::SIGCONT);
    let (ok, failures) = load.finish();
    eprintln!("steer load with worker 2 stopped: {ok} answers, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:?}");
    let back = eventually(Duration::from_secs(10), || steer_of(&s.stats(), 2).is_u64());
    assert!(back, "worker 2 is available again once it runs: {}", s.stats());
}

#[test]
fn steer_load_scale_down_under_churn_loses_nothing() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let path = control_path("scale", "steer");
    let s = Server::start(&[
        "--mode",
        "reuseport",
        "--steer",
        "load",
        "--workers",
        "4",
        "--no-pin",
        "--control",
        path.to_str().unwrap(),
    ]);
    s.wait_workers_ready(4, START_TIMEOUT);
    scale_down_4_to_1_under_churn(&s, &path, "steer load");
    let workers = status(&path)["workers"].clone();
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
    assert!(workers[0]["steer"].is_u64(), "the one left is steered to: {workers}");
}

/// The binary run as `nobody` with no capabilities: it may not load BPF programs.
const UNPRIVILEGED: [&str; 4] = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

#[test]
fn without_privilege_steer_load_is_an_error_and_the_default_falls_back_to_hash() {
    if !nix::unistd::geteuid().is_root() || std::process::Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run the binary unprivileged");
        return;
    }
    let explicit = ["--mode", "reuseport", "--steer", "load", "--bind", "127.0.0.1:0", "--workers", "1"];
    let bounded = [&["timeout", "20"][..], &UNPRIVILEGED[..]].concat();
    let (status, _, stderr) = run_under(&bounded, &explicit);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--steer load: cannot create a REUSEPORT_SOCKARRAY map"), "{stderr}");
    let s = Server::start_under(&UNPRIVILEGED, &["--mode", "reuseport", "--workers", "1", "--no-pin"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let why = s.log().into_iter().filter(|l| l.starts_with("reuseport: steering by the kernel's hash")).count();
    assert_eq!(why, 1, "one line says why: {:?}", s.log());
    assert!(expect_worker(&s.stats(), 1).get("steer").is_none(), "{}", s.stats());
    let (status, _, stderr) = run_to_exit(&["--mode", "rr", "--steer", "hash", "--bind", "127.0.0.1:0"], START_TIMEOUT);
    assert!(!status.success() && stderr.contains("--steer applies to --mode reuseport only"), "{stderr}");
}

/// Runs the binary under `wrapper` with `args`, expecting it to exit soon.
fn run_under(wrapper: &[&str], args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
