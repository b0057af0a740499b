//! Supervisor: a process started with the master, by a scale-up or by a
//! crash restart that never gets ready (its start-up hangs: `RINGMASTER_FAULT=never-ready:SLOT`)
//! does not hang on for ever. It is killed `--shutdown-timeout` after it
//! started, with a WARN line saying why, and the worker is restarted with
//! the back-off, as after a crash (an unstable restart); the other worker
//! serves throughout.
//!
//! Worker 1 writes slot 0; `scale 2` starts worker 2 in slot 1 (no slot has
//! been freed yet), and its restart takes slot 1 again or (while slot 1's
//! lane is still being settled) slot 2: both never get ready.

use crate::util;

use std::time::Duration;
use util::control::{control_path, ctl, status};
use util::load::Load;
use util::procs::{alive_ours, stop_and_check_no_process_left};
use util::*;

const FAULT: &str = "never-ready:1,never-ready:2";

/// What the kill's log line says of the time given with `--shutdown-timeout 2`.
const AFTER_2_S: &str = "2.0 s (--shutdown-timeout)";

/// Waits, from log line `from`, for worker 2 (pid `pid`) to be killed for
/// not getting ready `after` it was started by `why` (`scale`, `restart`),
/// and for its restart to be planned; the index of the planned restart.
fn killed_unready(s: &Server, from: usize, pid: u32, why: &str, after: &str) -> usize {
    let warned = format!(
        "{why}: worker 2 (pid {pid}) was not ready after {after}: killing it; it is restarted with the back-off"
    );
    let (i, _) = s.wait_for_log_from(from, |l| l == warned, Duration::from_secs(10));
    let raw = &s.raw_log()[i];
    assert_eq!(parse_log_line(raw).map(|l| l.level), Some("WARN"), "{raw}");
    let killed = format!("worker 2 (pid {pid}) killed by signal 9 (SIGKILL) as it was not ready in time");
    // Milliseconds after the warning (24 looks beside two busy loops), but
    // once over 5 s in the whole suite beside them (2026-12-07): a bound,
    // not a measure; a missed reap still fails.
    let (i, _) = s.wait_for_log_from(i, |l| l == killed, Duration::from_secs(30));
    assert!(eventually(IO_TIMEOUT, || !alive_ours(pid)), "pid {pid} still running");
    s.wait_for_log_from(i, |l| l.starts_with("worker 2 restarting in "), Duration::from_secs(5)).0
}

#[test]
fn a_scaled_up_or_restarted_process_never_ready_is_killed_and_restarted() {
    let path = control_path("scale", "start-not-ready");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let args = ["--mode", "rr", "--workers", "1", "--shutdown-timeout", "2", "--control", &control];
    let s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", FAULT)]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let load = Load::start(s.addr(), 2, 20_000, Duration::from_secs(40), Duration::from_millis(2));
    load.wait_ok(20, Duration::from_secs(5));

    let from = s.log_len();
    let (code, out, err) = ctl(&path, &["scale", "2"]);
    assert_eq!((code, out.as_str()), (0, "ok scaling to 2 workers"), "{err}");
    let (_, line) = s.wait_for_log_from(from, |l| l.starts_with("worker 2 started (pid "), Duration::from_secs(5));
    let (_, added) = parse_worker_started(&line).expect("a started line");
    let i = killed_unready(&s, from, added, "scale", AFTER_2_S);

    // The restart meets the fault too, and ends the same way.
    let (i, line) = s.wait_for_log_from(i, |l| l.starts_with("worker 2 restarted (pid "), Duration::from_secs(5));
    let restarted: u32 = line["worker 2 restarted (pid ".len()..].split(',').next().unwrap().parse().unwrap();
    killed_unready(&s, i, restarted, "restart", AFTER_2_S);
    let st = status(&path);
    let w2 = st["workers"].as_array().unwrap().iter().find(|w| w["id"] == 2).cloned();
    assert!(w2.is_some_and(|w| w["restarts"].as_u64() >= Some(1)), "worker 2's restarts: {st}");

    // Worker 1 served all along; worker 2 goes for good.
    let (code, out, err) = ctl(&path, &["scale", "1"]);
    assert_eq!((code, out.as_str()), (0, "ok scaling to 1 worker"), "{err}");
    let one = eventually(IO_TIMEOUT, || status(&path)["workers"].as_array().is_some_and(|ws| ws.len() == 1));
    assert!(one, "worker 2 still listed: {}", status(&path));
    let (ok, failures) = load.finish();
    assert!(failures.is_empty(), "{} of {} requests failed: {failures:?}", failures.len(), ok + failures.len() as u64);
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

/// One of the master's first workers never gets ready: it is killed as
/// the others are, and restarted; the other serves throughout. Worker 2
/// writes slot 1 at start; its restart takes slot 1 again or slot 2.
/// `--shutdown-timeout 1` is below the 2 s a new process always gets, and
/// the log line says which applied.
#[test]
fn a_first_worker_never_ready_is_killed_and_restarted() {
    const AFTER_FLOOR: &str = "2.0 s (the least a new process gets; --shutdown-timeout is 1.0 s)";
    let args = ["--mode", "rr", "--workers", "2", "--shutdown-timeout", "1"];
    let s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", FAULT)]);
    let line = s.wait_for_log(|l| l.starts_with("worker 2 started (pid "), Duration::from_secs(5));
    let (_, first) = parse_worker_started(&line).expect("a started line");
    let load = Load::start(s.addr(), 2, 20_000, Duration::from_secs(40), Duration::from_millis(2));
    load.wait_ok(20, Duration::from_secs(5));
    let i = killed_unready(&s, 0, first, "start", AFTER_FLOOR);
    let (i, line) = s.wait_for_log_from(i, |l| l.starts_with("worker 2 restarted (pid "), Duration::from_secs(5));
    let restarted: u32 = line["worker 2 restarted (pid ".len()..].split(',').next().unwrap().parse().unwrap();
    killed_unready(&s, i, restarted, "restart", AFTER_FLOOR);
    let (ok, failures) = load.finish();
    assert!(failures.is_empty(), "{} of {} requests failed: {failures:?}", failures.len(), ok + failures.len() as u64);
    stop_and_check_no_process_left(s);
}

/// A master stopped before its workers are ready never says it listens: the
/// `listening on` line (logged once every worker is ready, or 2 s after the
/// start at the latest) is for whoever waits to send it connections, and a
/// stopping master takes none. Its one worker never gets ready and is held
/// with SIGSTOP, so the stop outlasts those 2 s. Until 2026-12-08 the line
/// came mid-stop: seen beside two busy loops at `nice 19`, an upgrade's new
/// master stopped before it was ready logged `listening on` 2 s after its
/// `SIGTERM received`.
#[test]
fn a_master_stopped_before_its_workers_are_ready_never_says_it_listens() {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env("RINGMASTER_FAULT", "never-ready:0");
    let mut s = Server::launch(cmd, &["--workers", "1", "--no-pin", "--shutdown-timeout", "3"]);
    let line = s.wait_for_log(|l| l.starts_with("worker 1 started (pid "), START_TIMEOUT);
    let (_, worker) = parse_worker_started(&line).expect("a started line");
    let _held = util::procs::stop(worker);
    s.signal(libc::SIGTERM);
    let (stopping, _) = s.wait_for_log_from(0, |l| l.starts_with("SIGTERM received"), IO_TIMEOUT);
    s.wait_exit(Duration::from_secs(15));
    let log = s.log();
    if log[..stopping].iter().any(|l| l.starts_with("listening on ")) {
        eprintln!("not checked: the master announced itself before the SIGTERM reached it: {log:?}");
        return;
    }
    assert!(
        !log[stopping..].iter().any(|l| l.starts_with("listening on ")),
        "a stopping master says it listens: {log:?}"
    );
}
