//! Supervisor: scaling down while a crashed worker waits out its restart
//! back-off drops that restart, and says so in one INFO line; the worker
//! never comes back.
//!
//! Every process exits at start (`RINGMASTER_FAULT=exit-at-start`), so both
//! workers crash in a loop with growing delays; `scale 1` is sent once worker
//! 2 has announced a restart at least 3.5 s away (the back-off's own delay
//! is the window: nothing else can start it sooner). A second was too
//! little beside two busy loops: `ctl` took 2.9 s to reach the master, the
//! restart came first, and no drop was said (2026-12-07).

use crate::util;

use std::time::Duration;
use util::control::{control_path, ctl};
use util::procs::stop_and_check_no_process_left;
use util::*;

/// A pending restart at least this far away leaves room for `ctl scale`
/// (the back-off reaches it after about 7.5 s of restarts).
const AT_LEAST_MS: u64 = 3500;

/// The delay in `worker 2 restarting in N ms`, if the line is that.
fn worker_2_delay(line: &str) -> Option<u64> {
    line.strip_prefix("worker 2 restarting in ")?.strip_suffix(" ms")?.parse().ok()
}

#[test]
fn scaling_down_drops_a_pending_restart_and_says_so() {
    let path = control_path("scale", "pending-restart");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let args = ["--mode", "rr", "--workers", "2", "--control", &control];
    let s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "exit-at-start")]);
    let (i_pending, _) =
        s.wait_for_log_from(0, |l| worker_2_delay(l).is_some_and(|ms| ms >= AT_LEAST_MS), Duration::from_secs(40));

    let (code, out, err) = ctl(&path, &["scale", "1"]);
    assert_eq!((code, out.as_str()), (0, "ok scaling to 1 worker"), "{err}");
    let dropped = "scale: the pending restart of worker 2 is dropped: scaling removed its slot";
    let (i_dropped, _) = s.wait_for_log_from(i_pending, |l| l == dropped, Duration::from_secs(5));
    let raw = &s.raw_log()[i_dropped];
    assert_eq!(parse_log_line(raw).map(|l| l.level), Some("INFO"), "{raw}");

    // Worker 1 crashes on (the fault) and comes back each time; worker 2 never does.
    s.wait_for_log_from(i_dropped, |l| l.starts_with("worker 1 restarted (pid "), Duration::from_secs(30));
    let status = util::control::status(&path);
    let ids: Vec<u64> = status["workers"].as_array().unwrap().iter().filter_map(|w| w["id"].as_u64()).collect();
    assert_eq!(ids, [1], "worker 2 is gone: {status}");
    let log = s.log();
    assert!(
        !log[i_pending + 1..].iter().any(|l| l.starts_with("worker 2 restart")),
        "worker 2 restarted, or planned to, after the restart that was dropped: {log:?}"
    );
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}
