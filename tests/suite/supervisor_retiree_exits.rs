//! Supervisor: how a retiring (draining) process's exit is logged. Its own
//! exit with code 0 after draining is the normal course: INFO. Killed by the
//! master because it overran its drain: WARN, the line saying so. Killed by
//! anyone else (a signal the master did not send): WARN.
//!
//! A worker is kept from draining by stopping it (SIGSTOP, the watchdog off)
//! before a scale-down retires it.

use crate::util;

use std::path::{Path, PathBuf};
use std::time::Duration;
use util::control::{control_path, ctl, status};
use util::procs::{kill, process_state, stop, stop_and_check_no_process_left, ContinueOnDrop};
use util::*;

/// `rr` workers with the watchdog off and a control socket, all ready;
/// returns the server, the socket's path and the workers' pids in id order.
fn start(name: &str, workers: usize, shutdown_timeout: &str) -> (Server, PathBuf, Vec<u32>) {
    let path = control_path("retiree", name);
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let n = workers.to_string();
    let args = ["--mode", "rr", "--workers", &n, "--shutdown-timeout", shutdown_timeout, "--watchdog", "0"];
    let s = Server::start(&[&args[..], &["--control", &control]].concat());
    s.wait_workers_ready(workers, START_TIMEOUT);
    let st = status(&path);
    let pids = st["workers"].as_array().unwrap().iter().map(|w| w["pid"].as_u64().unwrap() as u32).collect();
    (s, path, pids)
}

/// Stops `pid` (it cannot drain) until the guard is dropped.
fn stopped(pid: u32) -> ContinueOnDrop {
    let guard = stop(pid);
    assert!(eventually(IO_TIMEOUT, || process_state(pid) == Some('T')), "{pid} not stopped");
    guard
}

/// Asks `scale n` and waits for the master to say it scales (it retires the
/// newest workers in the same step).
fn scale(s: &Server, path: &Path, n: usize) {
    let from = s.log_len();
    let (code, out, err) = ctl(path, &["scale", &n.to_string()]);
    let workers = if n == 1 { "1 worker".to_string() } else { format!("{n} workers") };
    assert_eq!((code, out), (0, format!("ok scaling to {workers}")), "{err}");
    s.wait_for_log_from(from, |l| l.starts_with("scaling from ") && l.ends_with(&format!(" to {workers}")), IO_TIMEOUT);
}

/// Waits for the line `message` from line `from` on; returns its level.
fn level_of(s: &Server, from: usize, message: &str, timeout: Duration) -> String {
    let (i, _) = s.wait_for_log_from(from, |l| l == message, timeout);
    let raw = &s.raw_log()[i];
    parse_log_line(raw).unwrap_or_else(|| panic!("not a log line: {raw}")).level.to_string()
}

#[test]
fn a_retiree_the_master_kills_for_overrunning_its_drain_is_a_warning_saying_so() {
    let (s, path, pids) = start("overran", 2, "1");
    let gone = pids[1];
    let _stopped = stopped(gone);
    let from = s.log_len();
    scale(&s, &path, 1);
    let killing =
        format!("scale: worker 2 (pid {gone}) still running a second after --shutdown-timeout 1.0 s: killing it");
    s.wait_for_log_from(from, |l| l == killing, Duration::from_secs(10));
    let exit = format!("worker 2 (pid {gone}) killed by signal 9 (SIGKILL) after overrunning its drain");
    assert_eq!(level_of(&s, from, &exit, Duration::from_secs(5)), "WARN");
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

/// The same for a worker the master kills at `--shutdown-timeout` of a stop:
/// its line says why. Until 2026-12-07 it was a bare `killed by signal 9
/// (SIGKILL)`, which reads as someone else's kill.
#[test]
fn a_worker_the_master_kills_at_the_end_of_a_stop_is_a_warning_saying_so() {
    let (mut s, path, pids) = start("stop-overran", 2, "1");
    let stuck = pids[1];
    let _stopped = stopped(stuck);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "shutdown timeout: killing the workers still running", Duration::from_secs(10));
    let exit = format!("worker 2 (pid {stuck}) killed by signal 9 (SIGKILL) after overrunning its drain");
    assert_eq!(level_of(&s, from, &exit, Duration::from_secs(5)), "WARN");
    s.wait_exit(Duration::from_secs(10));
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_retiree_killed_by_another_is_a_warning_and_a_drained_one_info() {
    // The default --shutdown-timeout (30 s): the master kills no one here.
    let (s, path, pids) = start("killed", 3, "30");

    // Worker 3 retires but cannot drain; someone else kills it.
    let victim = pids[2];
    let _stopped = stopped(victim);
    let from = s.log_len();
    scale(&s, &path, 2);
    kill(victim, libc::SIGKILL);
    let exit = format!("worker 3 (pid {victim}) killed by signal 9 (SIGKILL)");
    assert_eq!(level_of(&s, from, &exit, Duration::from_secs(5)), "WARN");

    // Worker 2 retires, drains and exits by itself.
    let from = s.log_len();
    scale(&s, &path, 1);
    let exit = format!("worker 2 (pid {}) exited with code 0", pids[1]);
    assert_eq!(level_of(&s, from, &exit, Duration::from_secs(10)), "INFO");
    let log = s.log();
    assert!(!log.iter().any(|l| l.contains("overrunning")), "the master killed no one: {log:?}");
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}
