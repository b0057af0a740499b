//! Issue 8, finding 2: workers always start from the master's own image. The
//! binary file is replaced on disk the way cargo and package managers do it
//! (a new file renamed over the old one); a reload and the restart of a
//! killed worker, both under load, still start ringmaster workers — from the
//! image the master runs, which the kernel now shows as "(deleted)" — and no
//! request fails but those the killed worker was serving. Then a real new binary lands on the path, and `upgrade`
//! moves the service onto it under the same load (more in
//! `upgrade_seamless.rs`).

use crate::util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::control::ctl;
use util::load::Load;
use util::procs::kill;
use util::upgrade::{parse_new_master, replace_by_rename, status_when, wait_gone, worker_pids, Replacement, TempDir};
use util::*;

/// Load clients; each has one connection at a time.
const CLIENTS: usize = 4;

/// Each worker's pid, by id, once both workers are ready and `pred` holds for each.
fn wait_for_workers(control: &Path, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<u32> {
    worker_pids(&status_when(control, 2, pred))
}

#[test]
fn reload_and_restart_work_after_the_binary_is_replaced() {
    let dir = TempDir::new("upgrade");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let control_arg = control.to_str().expect("UTF-8 path");
    let mut s = Server::start_binary(&binary, &["--workers", "2", "--no-pin", "--control", control_arg]);
    let first = wait_for_workers(&control, |_| true);
    let load = Load::start(s.addr(), CLIENTS, 5_000, Duration::from_secs(60), Duration::from_millis(2));
    load.wait_ok(50, Duration::from_secs(10));

    // A new file renamed over the old one: the old inode lives on only as the
    // running image. (Something that is not ringmaster at all, so a worker
    // started from the path could not pass for one.)
    replace_by_rename(&binary, Replacement::Script("#!/bin/sh\necho 'not ringmaster' >&2\nexit 7\n"));

    let (code, out, err) = ctl(&control, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"), "{err}");
    let reloaded = wait_for_workers(&control, |w| w["pid"].as_u64().is_some_and(|pid| !first.contains(&(pid as u32))));
    let answered = load.ok();
    load.wait_ok(answered + 50, Duration::from_secs(10));

    // A SIGKILL loses what that worker was serving: at most one connection
    // per client (each has one at a time), all begun before the kill.
    let killed_at = Instant::now();
    kill(reloaded[0], libc::SIGKILL);
    let restarted = wait_for_workers(&control, |w| {
        w["pid"].as_u64().is_some_and(|pid| pid as u32 != reloaded[0]) && (w["id"] != 1 || w["restarts"] == 1)
    });
    let answered = load.ok();
    load.wait_ok(answered + 50, Duration::from_secs(10));

    // The workers run the master's image, whose file is gone from the path.
    for &pid in &restarted {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("read a worker's exe");
        let exe = exe.to_string_lossy();
        assert_eq!(exe, format!("{} (deleted)", binary.display()), "worker {pid} runs {exe}");
    }
    assert!(!s.log().iter().any(|l| l.contains("not ringmaster") || l.contains("cannot restart")), "{:?}", s.log());

    // A real new binary lands on the path: `upgrade` moves the service onto it.
    replace_by_rename(&binary, Replacement::Binary);
    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert!(code == 0 && out.starts_with("ok upgraded: pid "), "ctl upgrade: {out} {err}");
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let new_master = parse_new_master(&started).unwrap_or_else(|| panic!("no pid in {started:?}"));
    assert_eq!(s.wait_exit(Duration::from_secs(30)).code(), Some(0), "the old master exits 0");
    let upgraded =
        wait_for_workers(&control, |w| w["pid"].as_u64().is_some_and(|pid| !restarted.contains(&(pid as u32))));
    let answered = load.ok();
    load.wait_ok(answered + 50, Duration::from_secs(10));
    let (ok, failures) = load.finish();
    let (in_flight, later): (Vec<_>, Vec<_>) = failures.iter().partition(|f| f.began < killed_at);
    assert!(
        later.is_empty() && in_flight.len() <= CLIENTS,
        "{} of {} requests failed (at most {CLIENTS} begun before the SIGKILL may): {failures:?}",
        failures.len(),
        ok + failures.len() as u64
    );
    for &pid in &upgraded {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("read a worker's exe");
        assert_eq!(exe, binary, "worker {pid} runs the new file");
    }

    // Every process of either master ends once the new one is stopped.
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    let mut pids: Vec<u32> = util::procs::logged_pids(&s.log()).into_iter().collect();
    pids.push(new_master);
    let left = wait_gone(&pids, Duration::from_secs(15));
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(dir.running().is_empty(), "processes left: {:?}", dir.running());
}
