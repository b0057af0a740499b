//! Supervisor (issue 5): scaling at run time, seen in `status`.
//!
//! SIGTTIN adds a worker, SIGTTOU retires the newest one gracefully (never
//! below one), and `ringmaster ctl PATH scale N` sets the count; `status` on the
//! control socket lists exactly the running workers. Clients run throughout
//! and none of their requests may fail: retiring is a drain, not a kill. Both
//! modes.
//!
//! A retired worker that cannot drain (SIGSTOPped, the watchdog off) is
//! killed `--shutdown-timeout` after it was told to.

use crate::util;

use std::path::Path;
use std::time::{Duration, Instant};
use util::control::{control_path, ctl, status};
use util::load::Load;
use util::procs::{alive_ours, process_state, stop, stop_and_check_no_process_left};
use util::*;

// --- local helpers ------------------------------------------------------------------------

/// Waits until `status` lists exactly the workers `1..=n`, all ready; returns it.
fn wait_for_workers(path: &Path, n: u64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = eventually(Duration::from_secs(5), || {
        last = status(path);
        let ws = last["workers"].as_array().unwrap();
        let ids: Vec<u64> = ws.iter().filter_map(|w| w["id"].as_u64()).collect();
        ids == (1..=n).collect::<Vec<_>>() && ws.iter().all(|w| w["state"] == "ready")
    });
    assert!(ok, "status did not settle on {n} ready workers: {last}");
    last
}

fn pids_of(status: &serde_json::Value) -> Vec<u64> {
    status["workers"].as_array().unwrap().iter().map(|w| w["pid"].as_u64().unwrap()).collect()
}

// --- the test -------------------------------------------------------------------------------

fn scale_up_and_down(mode: &str) {
    let path = control_path("scale", mode);
    let path_str = path.to_str().unwrap().to_string();
    let s = Server::start(&["--mode", mode, "--workers", "2", "--control", &path_str]);
    let two = wait_for_workers(&path, 2);
    let original = pids_of(&two);
    let cpus: Vec<u64> = two["workers"].as_array().unwrap().iter().map(|w| w["cpu"].as_u64().unwrap()).collect();

    // Lighter than the other load tests (a request every 1 ms per client): this
    // one runs for a few seconds.
    let load = Load::start(s.addr(), 3, 20_000, Duration::from_secs(30), Duration::from_millis(1));
    load.wait_ok(100, Duration::from_secs(5));

    // SIGTTIN: a third worker, with the next id, pinned round the CPUs.
    let from = s.log_len();
    s.signal(libc::SIGTTIN);
    s.wait_for_log_from(from, |l| l == "scaling from 2 to 3 workers", IO_TIMEOUT);
    let three = wait_for_workers(&path, 3);
    assert_eq!(pids_of(&three)[..2], original[..], "adding a worker leaves the others alone: {three}");
    let w3 = &three["workers"][2];
    assert_eq!(w3["cpu"].as_u64(), Some(cpus[0]), "worker 3 is pinned round the CPUs: {three}");
    let w3_pid = w3["pid"].as_u64().unwrap();
    s.wait_for_log_from(from, |l| l == format!("worker 3 started (pid {w3_pid}, cpu {})", cpus[0]), IO_TIMEOUT);
    if mode == "rr" {
        // It takes its turn: connections are dealt over three workers now.
        let before = three["workers"][2]["accepted"].as_u64().unwrap();
        let ok = eventually(Duration::from_secs(3), || status(&path)["workers"][2]["accepted"].as_u64() > Some(before));
        assert!(ok, "worker 3 gets no connections: {}", status(&path));
    }

    // SIGTTOU: the newest worker drains and exits 0, the others stay.
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    s.wait_for_log_from(from, |l| l == "scaling from 3 to 2 workers", IO_TIMEOUT);
    s.wait_for_log_from(from, |l| l == format!("worker 3 (pid {w3_pid}) exited with code 0"), Duration::from_secs(5));
    let back = wait_for_workers(&path, 2);
    assert_eq!(pids_of(&back), original, "{back}");

    // Down to one, and never below.
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    s.wait_for_log_from(from, |l| l == "scaling from 2 to 1 worker", IO_TIMEOUT);
    let one = wait_for_workers(&path, 1);
    assert_eq!(pids_of(&one), original[..1], "{one}");
    // The exit line may reach our log reader after `status` already shows one
    // worker: wait for it before marking where the next check starts.
    s.wait_for_log_from(
        from,
        |l| l == format!("worker 2 (pid {}) exited with code 0", original[1]),
        Duration::from_secs(5),
    );
    let from = s.log_len();
    s.signal(libc::SIGTTOU);
    // The master decides at once, and says so: it keeps the one worker. (Had
    // it retired it, `scale 3` below would find no worker 1 to keep.)
    s.wait_for_log_from(from, |l| l == "scaling: already at 1 worker", IO_TIMEOUT);
    let still = wait_for_workers(&path, 1);
    assert_eq!(pids_of(&still), original[..1], "SIGTTOU at one worker must keep it: {still}");
    assert!(!s.log()[from..].iter().any(|l| l.contains(") exited with code")), "{:?}", &s.log()[from..]);

    // `ctl scale N` both ways.
    let (code, reply, _) = ctl(&path, &["scale", "3"]);
    assert_eq!((code, reply.as_str()), (0, "ok scaling to 3 workers"));
    let three = wait_for_workers(&path, 3);
    assert_eq!(pids_of(&three)[0], original[0], "worker 1 is the original process, never retired: {three}");
    let (code, reply, _) = ctl(&path, &["scale", "0"]);
    assert_eq!(code, 1, "scale 0 is refused: {reply}");
    assert!(reply.starts_with("error:"), "{reply}");
    let (code, reply, _) = ctl(&path, &["scale", "many"]);
    assert_eq!(code, 1, "{reply}");
    assert!(reply.starts_with("error:"), "{reply}");
    assert_eq!(status(&path)["workers"].as_array().unwrap().len(), 3, "a refused scale changes nothing");
    let (code, reply, _) = ctl(&path, &["scale", "2"]);
    assert_eq!((code, reply.as_str()), (0, "ok scaling to 2 workers"));
    let two = wait_for_workers(&path, 2);
    assert_eq!(pids_of(&two)[0], original[0], "{two}");

    // The clients were served throughout.
    let ok_now = load.ok();
    load.wait_ok(ok_now + 100, Duration::from_secs(5));
    let (ok, failures) = load.finish();
    eprintln!("{mode}: {ok} answers, {} failures while scaling", failures.len());
    assert!(failures.is_empty(), "{} requests failed while scaling: {failures:?}", failures.len());
    let log = s.log();
    let crashes: Vec<&String> =
        log.iter().filter(|l| l.contains("killed by signal") || l.contains("restarting in")).collect();
    assert!(crashes.is_empty(), "{crashes:?}");
    stop_and_check_no_process_left(s);
    assert!(!path.exists(), "control socket left behind");
}

#[test]
fn rr_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("rr");
}

#[test]
fn shared_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("shared");
}

#[test]
fn least_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("least");
}

#[test]
fn reuseport_sigttin_sigttou_and_ctl_scale_change_the_worker_count() {
    scale_up_and_down("reuseport");
}

#[test]
fn a_stopped_worker_scaled_away_is_killed_after_the_shutdown_timeout() {
    let path = control_path("scale", "stopped");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().unwrap().to_string();
    let args = ["--mode", "rr", "--workers", "2", "--shutdown-timeout", "2", "--watchdog", "0", "--control", &control];
    let s = Server::start(&args);
    let two = wait_for_workers(&path, 2);
    let pids = pids_of(&two);
    let gone = pids[1] as u32;
    let _stopped = stop(gone);
    assert!(eventually(IO_TIMEOUT, || process_state(gone) == Some('T')), "worker 2 ({gone}) not stopped");

    let from = s.log_len();
    let asked = Instant::now();
    let (code, out, err) = ctl(&path, &["scale", "1"]);
    assert_eq!((code, out.as_str()), (0, "ok scaling to 1 worker"), "{err}");
    let killing =
        format!("scale: worker 2 (pid {gone}) still running a second after --shutdown-timeout 2.0 s: killing it");
    let (i_kill, _) = s.wait_for_log_from(from, |l| l == killing, Duration::from_secs(10));
    assert!(asked.elapsed() >= Duration::from_secs(2), "killed before --shutdown-timeout: {:?}", asked.elapsed());
    let killed = format!("worker 2 (pid {gone}) killed by signal 9 (SIGKILL) after overrunning its drain");
    s.wait_for_log_from(i_kill, |l| l == killed, Duration::from_secs(5));

    let one = wait_for_workers(&path, 1);
    assert_eq!(pids_of(&one), pids[..1], "worker 1 left alone: {one}");
    assert!(!alive_ours(gone), "worker 2 ({gone}) still running");
    let log = s.log();
    assert!(!log[from..].iter().any(|l| l.contains("restarting in")), "a retired worker is not restarted: {log:?}");
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

/// SIGTTIN stops at the most workers (`--workers` and `scale N` do too):
/// past it a reload would find no slot in the stats block for a worker's
/// new process. Until 2026-12-06 it started a 513th worker.
#[test]
fn sigttin_at_the_most_workers_adds_none() {
    let most = ringmaster_balancer::MAX_WORKERS.to_string();
    let s = Server::start(&["--workers", &most, "--no-pin", "--max-conns", "16"]);
    s.wait_workers_ready(ringmaster_balancer::MAX_WORKERS, START_TIMEOUT);
    let from = s.log_len();
    s.signal(libc::SIGTTIN);
    let refused = format!("SIGTTIN: at most {most} workers: not scaling");
    s.wait_for_log_from(from, |l| l == refused, IO_TIMEOUT);
    // A line of 512 workers, each with its memory and CPU read from /proc:
    // given the start's patience on a busy machine.
    let workers = s.stats_within(START_TIMEOUT)["workers"].as_array().map_or(0, Vec::len);
    assert_eq!(workers, ringmaster_balancer::MAX_WORKERS, "{:?}", &s.log()[from..]);
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}
