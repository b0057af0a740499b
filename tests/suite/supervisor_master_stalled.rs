//! Supervisor: a master that stands still (`SIGSTOP` and `SIGCONT`, a
//! paused machine) past a deadline takes in what its workers did meanwhile
//! before it judges the deadline. A reload's new process, or a scale-up's,
//! that got ready while the master stood still past its ready deadline
//! (`--shutdown-timeout`, at least 2 s; 4 s here) serves on: the reload ends `done`,
//! the new worker is not restarted. Until 2026-12-06 the first tick after
//! the stand-still came ahead of the readiness, which the master reads each
//! turn from the stats block: it killed the ready process as "not ready
//! after 4.0 s", cancelled the operator's reload, and restarted a scale-up's
//! worker with the back-off. Likewise a process retired by a scale-down that
//! exited by itself meanwhile is logged as exited, not as "still running a
//! second after --shutdown-timeout: killing it". And workers that stood
//! still with the master past `--watchdog` are not killed by its first look
//! at their heartbeats, before they could turn (until 2026-12-07 they were:
//! "made no progress for 2.0 s").

use crate::util;

use std::time::{Duration, Instant};

use util::procs::{
    alive_ours, kill, process_state, stop, stop_and_check_no_process_left, stop_between_turns, ContinueOnDrop,
};
use util::sockets::{socket_inode, wait_queued};
use util::stats::{expect_worker, num, worker};
use util::*;

/// `--shutdown-timeout`: also how long a new process has to be ready, and
/// how long a retiree's drain may last. Long enough for the test's steps
/// between a start (or a retirement) and the master's stop on a loaded
/// machine: the deadline must pass while the master stands still.
const SHUTDOWN_TIMEOUT: &str = "4";
const READY_WITHIN: Duration = Duration::from_secs(4);
/// How far past a deadline the master stays stopped.
const PAST: Duration = Duration::from_millis(500);

/// The children of the (single-threaded) master.
fn children(master: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits for a new worker process of `master` (one not in `known`) to run
/// the worker's code (its title set by its exec), and stops it there,
/// before it can be ready: the guard continues it.
fn stop_new_worker_at_start(master: u32, known: &[u32]) -> (u32, ContinueOnDrop) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        for pid in children(master).into_iter().filter(|p| !known.contains(p)) {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if title.starts_with(b"ringmaster: worker") {
                let guard = stop(pid);
                // It runs no code of its own once signalled; it stops on its
                // way back from the kernel.
                assert!(eventually(IO_TIMEOUT, || process_state(pid) == Some('T')), "{pid} did not stop");
                return (pid, guard);
            }
        }
        std::hint::spin_loop();
    }
    panic!("no new worker process of master {master} within {IO_TIMEOUT:?}");
}

/// With `master` stopped between two turns, lets worker `pid` run until it
/// waits for events in its loop (it publishes ready before its first wait),
/// then until `deadline` is `PAST` behind; the master stays stopped.
fn let_it_get_ready_past(pid: u32, worker: ContinueOnDrop, deadline: Instant) {
    drop(worker);
    drop(stop_between_turns(pid));
    let until = deadline + PAST;
    while Instant::now() < until {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn a_reload_whose_new_process_got_ready_while_the_master_stood_still_ends_done() {
    let s = Server::start(&["--mode", "rr", "--workers", "1", "--no-pin", "--shutdown-timeout", SHUTDOWN_TIMEOUT]);
    let st = s.wait_workers_ready(1, START_TIMEOUT);
    let old = num(&expect_worker(&st, 1), "pid") as u32;
    let from = s.log_len();
    kill(s.pid(), libc::SIGHUP);
    let (new, worker) = stop_new_worker_at_start(s.pid(), &[old]);
    // Logged once it started: its ready deadline is set in that turn, before this.
    let replacing = format!("worker 1 started (pid {new}, cpu none, replacing pid {old})");
    let (i_started, _) = s.wait_for_log_from(from, |l| l == replacing, IO_TIMEOUT);
    let deadline = Instant::now() + READY_WITHIN;
    let (master, _) = stop_between_turns(s.pid());
    assert_eq!(process_state(new), Some('T'), "the new process ran on");
    let_it_get_ready_past(new, worker, deadline);
    drop(master);

    let (i_end, line) = s.wait_for_log_from(
        i_started,
        |l| l.starts_with("reload: done") || l.contains("was not ready after"),
        Duration::from_secs(10),
    );
    assert_eq!(line, "reload: done (1 worker replaced)", "{:?}", &s.log()[i_started..=i_end]);
    let st = s.wait_workers_ready(1, IO_TIMEOUT);
    assert_eq!(num(&expect_worker(&st, 1), "pid") as u32, new, "{st}");
    assert!(eventually(IO_TIMEOUT, || !alive_ours(old)), "the old process {old} still runs");
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}

#[test]
fn a_scaled_up_worker_that_got_ready_while_the_master_stood_still_serves_on() {
    let s = Server::start(&["--mode", "rr", "--workers", "1", "--no-pin", "--shutdown-timeout", SHUTDOWN_TIMEOUT]);
    let st = s.wait_workers_ready(1, START_TIMEOUT);
    let first = num(&expect_worker(&st, 1), "pid") as u32;
    let from = s.log_len();
    kill(s.pid(), libc::SIGTTIN);
    let (new, worker) = stop_new_worker_at_start(s.pid(), &[first]);
    let started = format!("worker 2 started (pid {new}, cpu none)");
    let (i_started, _) = s.wait_for_log_from(from, |l| l == started, IO_TIMEOUT);
    let deadline = Instant::now() + READY_WITHIN;
    let (master, _) = stop_between_turns(s.pid());
    assert_eq!(process_state(new), Some('T'), "the new process ran on");
    let_it_get_ready_past(new, worker, deadline);
    drop(master);

    // Ready in the master's eyes, the same process, and no later line kills it.
    let st = s.wait_workers_ready(2, Duration::from_secs(10));
    assert_eq!(num(&expect_worker(&st, 2), "pid") as u32, new, "{st}");
    let log = s.log();
    assert!(
        !log[i_started..]
            .iter()
            .any(|l| l.contains("was not ready after") || l.contains(&format!("(pid {new}) killed"))),
        "{:?}",
        &log[i_started..]
    );
    stop_and_check_no_process_left(s);
}

#[test]
fn a_retiree_that_exited_while_the_master_stood_still_is_logged_as_exited() {
    let s = Server::start(&["--mode", "rr", "--workers", "2", "--no-pin", "--shutdown-timeout", SHUTDOWN_TIMEOUT]);
    s.wait_workers_ready(2, START_TIMEOUT);
    // `rr` deals in turn: worker 1 answers this one, worker 2, the newest
    // and the one a scale-down retires, gets the next, a request half sent
    // that keeps it draining.
    s.connect().get_ok();
    let mut held = s.connect();
    held.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    let st = eventually_stats(&s, |st| num(&expect_worker(st, 2), "live") == 1);
    let pid = num(&expect_worker(&st, 2), "pid") as u32;
    let from = s.log_len();
    kill(s.pid(), libc::SIGTTOU);
    let (i_scaled, _) = s.wait_for_log_from(from, |l| l == "scaling from 2 to 1 worker", IO_TIMEOUT);
    let deadline = Instant::now() + READY_WITHIN + Duration::from_secs(1);
    let (master, _) = stop_between_turns(s.pid());
    // The retiree answers and exits by itself while the master stands still.
    held.send(b"world");
    assert_eq!(held.read().status, 200);
    assert!(eventually(IO_TIMEOUT, || process_state(pid) == Some('Z')), "the retiree {pid} did not exit");
    let until = deadline + PAST;
    while Instant::now() < until {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    drop(master);

    let (_, line) = s.wait_for_log_from(i_scaled, |l| l.contains(&format!("(pid {pid})")), Duration::from_secs(10));
    assert_eq!(line, format!("worker 2 (pid {pid}) exited with code 0"), "{:?}", &s.log()[i_scaled..]);
    stop_and_check_no_process_left(s);
}

#[test]
fn workers_that_stood_still_with_the_master_are_not_killed_by_its_watchdog() {
    // The master and both workers stand still (the whole group stopped, a
    // frozen cgroup, a paused or starved machine) past --watchdog, and the
    // master runs on first: three of its ticks before the workers run. What
    // the master did not watch is not held against them.
    const WATCHDOG: Duration = Duration::from_secs(2);
    let s = Server::start(&["--mode", "rr", "--workers", "2", "--no-pin", "--watchdog", "2"]);
    let st = s.wait_workers_ready(2, START_TIMEOUT);
    let pids = [1, 2].map(|w| num(&expect_worker(&st, w), "pid") as u32);
    let from = s.log_len();
    let workers: Vec<ContinueOnDrop> = pids.iter().map(|&pid| stop_between_turns(pid).0).collect();
    let (master, stopped_at) = stop_between_turns(s.pid());
    let until = stopped_at + WATCHDOG + Duration::from_secs(1);
    while Instant::now() < until {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    drop(master);
    s.stats();
    std::thread::sleep(Duration::from_millis(300));
    let kills = |log: &[String]| -> Vec<String> {
        log.iter().filter(|l| l.contains("made no progress") || l.contains("killed")).cloned().collect()
    };
    let killed = kills(&s.log()[from..]);
    assert!(killed.is_empty(), "the master killed workers that stood still with it: {killed:?}");
    for pid in pids {
        assert_eq!(process_state(pid), Some('T'), "worker {pid} ran before the master's ticks");
    }
    drop(workers);

    // Both serve on, the same processes, and no line says the master killed one.
    let mut st = serde_json::Value::Null;
    let ready = eventually(Duration::from_secs(10), || {
        st = s.stats();
        [1, 2].iter().all(|&w| worker(&st, w).is_some_and(|w| w["state"] == "ready"))
    });
    let log = s.log();
    assert!(ready, "workers not ready: {st}\n{:?}", &log[from..]);
    let now = [1, 2].map(|w| num(&expect_worker(&st, w), "pid") as u32);
    let killed = kills(&log[from..]);
    assert!(killed.is_empty() && now == pids, "workers {pids:?}, now {now:?}: {killed:?}");
    for _ in 0..4 {
        s.connect().get_ok();
    }
    stop_and_check_no_process_left(s);
}

#[test]
fn a_stop_leaves_the_listener_of_a_worker_that_stood_still_with_the_master_to_it() {
    // A stop in `--mode reuseport` whose worker, then master, stood still a
    // moment after it began (the process group stopped, a cgroup frozen)
    // for longer than the 2 s a stop gives a worker that stands still
    // before it shuts that worker's listener and answers its queue `503`:
    // the stand-still is the master's own, and the client queued before
    // the stop is the worker's to serve once both run again. Until
    // 2026-12-07 the stop's first tick after it judged the worker's
    // heartbeat before the watchdog's look made up for what the master did
    // not watch: the client got `503`.
    const STOOD: Duration = Duration::from_secs(3);
    let args = ["--mode", "reuseport", "--workers", "1", "--no-pin", "--shutdown-timeout", "30"];
    let mut s = Server::start(&args);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&expect_worker(&ready, 1), "pid") as u32;
    let listener = socket_inode(pid, 5).expect("the worker's listener");
    let (worker, _) = stop_between_turns(pid);
    let mut client = s.connect();
    client.send(GET_CLOSE);
    assert_eq!(wait_queued(listener, 1), 1, "the client waits on the stopped worker's listener");
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.contains("received: stopping"), IO_TIMEOUT);
    let (master, stopped_at) = stop_between_turns(s.pid());
    let until = stopped_at + STOOD;
    while Instant::now() < until {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    // The master first, for three of its ticks, as a group continued
    // process by process may be.
    drop(master);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(process_state(pid), Some('T'), "the worker ran before the master's ticks");
    drop(worker);
    let answer = client.try_read().map(|resp| resp.status);
    let log = s.log()[from..].join("\n");
    assert_eq!(answer.ok(), Some(200), "the client queued before the stop; log:\n{log}");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{}", s.log().join("\n"));
    stop_and_check_no_process_left(s);
}

/// The stats once `pred` holds for them (within [`IO_TIMEOUT`]).
fn eventually_stats(s: &Server, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let held = eventually(IO_TIMEOUT, || {
        last = s.stats();
        pred(&last)
    });
    assert!(held, "stats never as expected: {last}");
    last
}
