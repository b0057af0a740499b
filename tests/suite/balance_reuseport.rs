//! `--mode reuseport`: every worker accepts on a `SO_REUSEPORT` listener of
//! its own, which the master creates per worker slot and keeps. Everything is
//! served and the kernel's split is reported; a worker restarted after a
//! crash takes over the connections that queued on its slot's listener while
//! it was down (none is reset); a worker scaled away empties its queue as its
//! drain begins, the master takes what arrives after and hands it on as it
//! closes the listener, and the kernel migrates what was mid-handshake there
//! (`net.ipv4.tcp_migrate_req`, set by the master as root), so a scale-down
//! under load fails no request, nor one of a retiree that is stopped or
//! killed.

use crate::util;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use util::control::{control_path, ctl, status};
use util::hashed::two_hashed_workers;
use util::load::{
    keepalive_clients, patient_churn, requests_then_close, scale_down_4_to_1_under_churn,
    short_connections_closed_by_the_client, Failure, Load,
};
use util::procs::{stop, ContinueOnDrop};
use util::sockets::{accept_queue, migrations, socket_inode, socket_inodes, wait_queued};
use util::stats::{expect_worker, num, per_worker, stats_when_idle};
use util::*;

/// One loaded server at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn reuseport_each_worker_slot_has_its_own_listener_kept_by_the_master() {
    let s = Server::start(&["--mode", "reuseport", "--workers", "3"]);
    let stats = s.wait_workers_ready(3, START_TIMEOUT);
    assert_eq!(stats["mode"], "reuseport", "{stats}");
    let master = socket_inodes(s.pid());
    let mut listeners = BTreeSet::new();
    for id in 1..=3 {
        let pid = num(&expect_worker(&stats, id), "pid") as u32;
        let listener = socket_inode(pid, 5).unwrap_or_else(|| panic!("worker {id} has no listener at fd 5"));
        assert!(master.contains(&listener), "the master keeps worker {id}'s listener");
        listeners.insert(listener);
    }
    assert_eq!(listeners.len(), 3, "one listener per worker: {listeners:?}");
}

#[test]
fn reuseport_many_concurrent_keepalive_clients_all_served_split_reported() {
    const CONNS: usize = 64;
    const REQS: usize = 20;
    let s = Server::start(&["--mode", "reuseport", "--workers", "4"]);
    s.wait_workers_ready(4, START_TIMEOUT);
    let conns = keepalive_clients(s.addr(), CONNS, REQS);
    let live = per_worker(&s.stats(), "live");
    // The kernel's hash of each connection's ports decides: not asserted.
    eprintln!("reuseport split of 64 keep-alive connections: {live:?}");
    assert_eq!(live.iter().sum::<u64>(), CONNS as u64, "{live:?}");
    drop(conns);
    let stats = stats_when_idle(&s);
    assert_eq!(stats_totals(&stats), (CONNS as u64, (CONNS * REQS) as u64, 0), "{stats}");
}

#[test]
fn reuseport_stats_line_counts_what_was_sent() {
    let s = Server::start(&["--mode", "reuseport", "--workers", "2"]);
    for n in [10usize, 9, 8, 6, 4] {
        requests_then_close(s.addr(), n);
    }
    let stats = stats_when_idle(&s);
    assert_eq!(stats_totals(&stats), (5, 37, 0), "{stats}");
}

#[test]
fn reuseport_clients_closing_right_after_the_response_all_get_it() {
    short_connections_closed_by_the_client("reuseport", false);
}

#[test]
fn reuseport_error_closes_do_not_disturb_other_connections() {
    short_connections_closed_by_the_client("reuseport", true);
}

/// io_uring accepts a worker keeps armed (the engine's `accepts_outstanding`).
const ARMED_ACCEPTS: usize = 4;

/// Worker 2 is stopped while idle, connections queue on its listener, then it
/// is killed and restarted: the new process takes the queue. On io_uring a
/// stopped worker's armed accepts have each claimed one queued connection,
/// and the kernel completes them as the killed ring is torn down, in the dead
/// process: at most that many are reset. On epoll nothing is claimed.
fn restart_loses_nothing_queued_on_the_slot(backend: &str, lost_at_most: usize) {
    let _one = one_at_a_time();
    // The hash keeps sending worker 2 its share while it is stopped (`--steer load` would not).
    let s =
        Server::start(&["--mode", "reuseport", "--steer", "hash", "--workers", "2", "--no-pin", "--backend", backend]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    // Stopped while idle, worker 2 holds no connection: whatever the kernel
    // hashes to its listener from now on waits in that listener's queue (and
    // the clients that connected there wait with it).
    stats_when_idle(&s);
    let stopped = stop(victim);
    let from = s.log_len();
    let load = patient_churn(s.addr(), Duration::from_secs(15));
    let queued = wait_queued(listener, 4);
    assert!(queued >= 4, "no connection queued on the stopped worker's listener ({queued})");
    eprintln!("{queued} connections queued on worker 2's listener; {} answered by worker 1", load.ok());
    // It dies with its queue unread: the listener is the master's, not its.
    if let Err(e) = stopped.signal(libc::SIGKILL) {
        panic!("SIGKILL to worker 2 (pid {victim}): {e}");
    }
    s.wait_for_log_from(
        from,
        |l| l == format!("worker 2 (pid {victim}) killed by signal 9 (SIGKILL)"),
        Duration::from_secs(5),
    );
    s.wait_for_log_from(from, |l| l.starts_with("worker 2 restarted (pid "), Duration::from_secs(5));
    let ok_back = load.ok();
    load.wait_ok(ok_back + 200, Duration::from_secs(10));
    let (ok, failures) = load.finish();
    let stats = s.stats();
    eprintln!("reuseport restart on {backend}: {ok} answers, {} failures; {stats}", failures.len());
    assert!(
        failures.len() <= lost_at_most,
        "connections queued on the restarted slot were lost ({} of {queued} queued): {failures:?}",
        failures.len()
    );
    assert!(num(&expect_worker(&stats, 2), "accepted") > 0, "the new worker 2 took its queue: {stats}");
}

#[test]
fn reuseport_restart_on_epoll_loses_nothing_queued_on_the_slot() {
    restart_loses_nothing_queued_on_the_slot("epoll", 0);
}

#[test]
fn reuseport_restart_on_io_uring_loses_at_most_the_armed_accepts() {
    restart_loses_nothing_queued_on_the_slot("auto", ARMED_ACCEPTS);
}

#[test]
fn reuseport_scale_down_under_load_loses_nothing() {
    let _one = one_at_a_time();
    let path = control_path("scale", "reuseport");
    let s = Server::start(&[
        "--mode",
        "reuseport",
        "--steer",
        "hash",
        "--workers",
        "4",
        "--no-pin",
        "--control",
        path.to_str().unwrap(),
    ]);
    s.wait_workers_ready(4, START_TIMEOUT);
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").unwrap_or_default();
    eprintln!("net.ipv4.tcp_migrate_req = {}", migrate.trim());
    scale_down_4_to_1_under_churn(&s, &path, "reuseport");
    assert_eq!(status(&path)["workers"].as_array().map(Vec::len), Some(1));
}

/// Worker 2 of 2 stopped, then scaled away, under churn that waits for its
/// answers: with `--steer hash` the kernel's hash keeps sending the stopped
/// worker's listener clients (`--steer load` would not), and at least 4
/// wait there. What the two tests below start from.
struct StoppedRetiree {
    s: Server,
    victim: u32,
    listener: u64,
    stopped: ContinueOnDrop,
    load: Load,
    queued: u64,
    /// The log's length before the scale-down.
    from: usize,
}

fn stopped_retiree(backend: &str, name: &str, patience: Duration) -> StoppedRetiree {
    let path = control_path(name, "reuseport");
    let s = two_hashed_workers(backend, &path, &[]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    stats_when_idle(&s);
    // Stopped, then retired: the stopped worker holds the listener beside
    // the master's copy, and connections queue.
    let stopped = stop(victim);
    let from = s.log_len();
    let (code, reply, _) = ctl(&path, &["scale", "1"]);
    assert_eq!((code, reply.as_str()), (0, "ok scaling to 1 worker"));
    let load = patient_churn(s.addr(), patience);
    let queued = wait_queued(listener, 4);
    assert!(queued >= 4, "no connection queued on the retired worker's listener ({queued})");
    StoppedRetiree { s, victim, listener, stopped, load, queued, from }
}

impl StoppedRetiree {
    /// Kills the stopped worker and waits for the master to log its death.
    fn kill(&self) {
        let (s, victim) = (&self.s, self.victim);
        let from = s.log_len();
        if let Err(e) = self.stopped.signal(libc::SIGKILL) {
            panic!("SIGKILL to worker 2 (pid {victim}): {e}");
        }
        s.wait_for_log_from(
            from,
            |l| l == format!("worker 2 (pid {victim}) killed by signal 9 (SIGKILL)"),
            Duration::from_secs(5),
        );
    }

    /// Lets the churn answer 100 more, then ends it: its failures.
    fn finish(self) -> (u64, u64, Vec<Failure>) {
        let ok_now = self.load.ok();
        self.load.wait_ok(ok_now + 100, Duration::from_secs(10));
        let (ok, failures) = self.load.finish();
        (self.queued, ok, failures)
    }
}

/// A retired worker killed before it took its queue: the master, which
/// kept a copy of its listener, takes what waits there and hands it on
/// (before 2026-12-07 its death closed the listener, the last copy: the
/// kernel migrated the queue, but reset a handshake completing at that
/// moment, and on io_uring the dying ring's armed accepts took some of it).
/// Should it stand still 2 s before the kill (a slow machine), the master
/// takes the queue then, which loses nothing either.
#[test]
fn reuseport_a_retired_workers_queue_is_handed_on_when_it_dies() {
    let _one = one_at_a_time();
    let migrate = "/proc/sys/net/ipv4/tcp_migrate_req";
    let on = std::fs::read_to_string(migrate).is_ok_and(|v| v.trim() == "1");
    if !on && std::fs::write(migrate, "1").is_err() {
        eprintln!("skipped: net.ipv4.tcp_migrate_req is not 1 and cannot be set (not root)");
        return;
    }
    let (success_before, failure_before) = migrations();
    // On epoll a stopped worker claims no queued connection (see the restart tests).
    let retiree = stopped_retiree("epoll", "migrate", Duration::from_secs(15));
    // It dies without emptying its queue: the master takes it.
    retiree.kill();
    let handed_on = |l: &str| {
        (l.starts_with("scale: worker 2's listener is closed: the ")
            || l.starts_with("scale: worker 2's listener is shut as it stands still: the "))
            && l.ends_with(" that waited there are handed on")
    };
    retiree.s.wait_for_log_from(retiree.from, handed_on, Duration::from_secs(5));
    let (queued, ok, failures) = retiree.finish();
    let (success, failure) = migrations();
    eprintln!(
        "{queued} queued on the retired listener; {ok} answers, {} failures; TCPMigrateReqSuccess +{}, \
         TCPMigrateReqFailure +{}",
        failures.len(),
        success - success_before,
        failure - failure_before
    );
    assert!(failures.is_empty(), "the retired worker's queue was not handed on: {failures:?}");
}

/// Worker 2 is stopped, then scaled away, under churn: the clients the
/// kernel's hash sends its listener wait there. The master keeps its copy of
/// that listener until the worker lets go of it, and once the worker has
/// stood still 2 s it takes what waits, hands it to worker 1 and shuts the
/// listener, while worker 2 is still stopped. Until 2026-12-07 the master let
/// its copy go at the scale-down: what waited there waited for the stopped
/// worker's kill at `--shutdown-timeout` (31 s), and on io_uring the dying
/// ring's armed accepts reset up to 4 of them (as in the restart tests).
fn a_stalled_retirees_queue_is_taken_while_it_stands_still(backend: &str) {
    let _one = one_at_a_time();
    let retiree = stopped_retiree(backend, "stalled", Duration::from_secs(20));
    // Worker 2 stays stopped: its listener stops listening all the same.
    let shut = eventually(Duration::from_secs(10), || accept_queue(retiree.listener).is_none());
    let queued = retiree.queued;
    assert!(shut, "the stopped retiree's listener still listens 10 s after the scale-down ({queued} queued)");
    let ok_now = retiree.load.ok();
    retiree.load.wait_ok(ok_now + 100, Duration::from_secs(10));
    // Killed now, it finds nothing left to take.
    retiree.kill();
    let (queued, ok, failures) = retiree.finish();
    eprintln!(
        "{backend}: {queued} queued on the stopped retiree's listener; {ok} answers, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "clients of the stopped retiree's listener failed: {failures:?}");
}

/// As above, but worker 1, the one left, is stopped too as the master takes
/// the retiree's queue: it has room, and it will serve again, so the master
/// holds what it took until worker 1 answers. Until 2026-12-08 the master
/// held a connection for a worker that lags only in modes where it accepts
/// (`rr`, `least`) or steers: under `--steer hash` it answered each with
/// `503` (seen beside two busy loops, where worker 1's acks came late).
fn a_stalled_retirees_queue_waits_for_a_stalled_heir(backend: &str) {
    let _one = one_at_a_time();
    let retiree = stopped_retiree(backend, "heir", Duration::from_secs(30));
    let heir = num(&expect_worker(&retiree.s.stats(), 1), "pid") as u32;
    let heir_stopped = stop(heir);
    let taken = |l: &str| {
        l.starts_with("scale: worker 2's listener is shut as it stands still: the ")
            && l.ends_with(" that waited there are handed on")
    };
    retiree.s.wait_for_log_from(retiree.from, taken, Duration::from_secs(10));
    // Worker 1 serves again: what the master held is its.
    drop(heir_stopped);
    let ok_now = retiree.load.ok();
    retiree.load.wait_ok(ok_now + 100, Duration::from_secs(10));
    retiree.kill();
    let stats = retiree.s.stats();
    let (queued, ok, failures) = retiree.finish();
    eprintln!(
        "{backend}: {queued} queued on the stopped retiree's listener; {ok} answers, {} failures; {stats}",
        failures.len()
    );
    assert!(failures.is_empty(), "clients of the retiree's listener failed while worker 1 stood still: {failures:?}");
}

#[test]
fn reuseport_a_stalled_retirees_queue_waits_for_a_stalled_heir_epoll() {
    a_stalled_retirees_queue_waits_for_a_stalled_heir("epoll");
}

#[test]
fn reuseport_a_stalled_retirees_queue_waits_for_a_stalled_heir_io_uring() {
    a_stalled_retirees_queue_waits_for_a_stalled_heir("auto");
}

#[test]
fn reuseport_a_stalled_retirees_queue_is_taken_while_it_stands_still_epoll() {
    a_stalled_retirees_queue_is_taken_while_it_stands_still("epoll");
}

#[test]
fn reuseport_a_stalled_retirees_queue_is_taken_while_it_stands_still_io_uring() {
    a_stalled_retirees_queue_is_taken_while_it_stands_still("auto");
}
