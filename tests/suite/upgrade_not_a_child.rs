//! An upgrade's new master that is not the old master's child when it reads
//! what it was handed: the old master was killed after starting it, or a
//! wrapper script started it without `exec`. It still takes the listener and
//! the control socket over (the readiness channel named in its environment
//! shows they come from the old master) and serves, the connections that
//! queued meanwhile included. Before, it ignored them, and its own bind of
//! the address they held failed: nothing served.
//!
//! An upgrade the old master gives up (its new master not ready in time, or
//! the old master stopped before it was ready) must not leave that new
//! master behind when a wrapper started it without `exec`: the old master's
//! `SIGTERM` reaches only the wrapper, so the new master reads the old
//! master's word on their channel. (Until 2026-12-06 the real new master
//! lived on, orphaned, with its workers; after a stop it even made the
//! control socket's path again, so that a master started there later
//! refused to start.)

use crate::util;

use std::path::Path;
use std::time::Duration;

use util::control::ctl;
use util::upgrade::{
    copy_for_exec, parent_of, replace_by_rename, running, status_when, wait_gone, worker_pids, Replacement, TempDir,
};
use util::*;

/// What the new master logs when its parent is not the old master.
const NOT_THE_PARENT: &str = "is not this process's parent";

/// A master of `mode` started from a copy of the binary in `dir`, with two
/// workers and a control socket there; the file at its path is then replaced
/// by `script`, in which `REAL` stands for another copy of the binary.
fn start_then_replace(dir: &TempDir, mode: &str, script: &str) -> Server {
    let binary = dir.install();
    let real = dir.join("ringmaster-real");
    copy_for_exec(Path::new(BIN), &real);
    let control = dir.join("control.sock");
    let args = ["--mode", mode, "--workers", "2", "--no-pin", "--control", control.to_str().expect("UTF-8 path")];
    let old = Server::start_binary(&binary, &args);
    status_when(&control, 2, |_| true);
    let script = script.replace("REAL", real.to_str().expect("UTF-8 path"));
    replace_by_rename(&binary, Replacement::Script(&script));
    old
}

/// The pid of the master that logged `upgrade: taking over from pid OLD`.
fn new_master_pid(log: &Server, old: u32) -> u32 {
    let taking = format!("upgrade: taking over from pid {old}:");
    let found = eventually(Duration::from_secs(15), || log.raw_log().iter().any(|l| l.contains(&taking)));
    assert!(found, "no new master took over; log:\n{}", log.raw_log().join("\n"));
    let line = log.raw_log().into_iter().find(|l| l.contains(&taking)).expect("found above");
    parse_log_line(&line).map(|l| l.pid).unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// The new master becomes ready (answering on the control socket it took
/// over), answers every connection in `waiting` and a new one, and stops
/// cleanly, leaving nothing running.
fn check_serves_then_stop(log: &Server, dir: &TempDir, new_master: u32, waiting: &mut [Conn]) {
    let control = dir.join("control.sock");
    let theirs = |w: &serde_json::Value| w["pid"].as_u64().is_some_and(|pid| parent_of(pid as u32) == Some(new_master));
    let workers = worker_pids(&status_when(&control, 2, theirs));
    for (i, conn) in waiting.iter_mut().enumerate() {
        let answer = conn.try_read().unwrap_or_else(|e| panic!("queued connection {i}: {e}"));
        check_ok(&answer);
    }
    log.connect().get_ok();
    let (code, out, err) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"), "{err}");
    let mut pids = workers;
    pids.push(new_master);
    let left = wait_gone(&pids, Duration::from_secs(15));
    assert!(left.is_empty(), "still running after the new master was stopped: {left:?}");
    assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
}

#[test]
fn a_new_master_whose_old_master_was_killed_before_it_started_serves_what_queued() {
    let dir = TempDir::new("upgrade-orphan");
    // The old master dies; once this script is another's child, it becomes the new master.
    let script = "#!/bin/sh\nold=$PPID\nkill -9 \"$old\"\n\
                  while [ \"$(cut -d' ' -f4 /proc/$$/stat)\" = \"$old\" ]; do sleep 0.01; done\n\
                  exec REAL \"$@\"\n";
    let mut old = start_then_replace(&dir, "rr", script);
    let old_pid = old.pid();
    old.signal(libc::SIGUSR2);
    let status = old.wait_exit(Duration::from_secs(15));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL), "{status:?}");

    // Nobody may accept yet: these wait in the listener's queue, which the script holds.
    const QUEUED: usize = 10;
    let mut waiting: Vec<Conn> = (0..QUEUED).map(|_| old.connect()).collect();
    for conn in &mut waiting {
        conn.send(GET_CLOSE);
    }
    let new_master = new_master_pid(&old, old_pid);
    let said = old.raw_log().iter().any(|l| l.contains(NOT_THE_PARENT));
    assert!(said, "the new master says its parent is not the old master; log:\n{}", old.raw_log().join("\n"));
    check_serves_then_stop(&old, &dir, new_master, &mut waiting);
}

#[test]
fn a_new_master_started_by_a_wrapper_that_does_not_exec_takes_over() {
    let dir = TempDir::new("upgrade-wrapped");
    let mut old = start_then_replace(&dir, "shared", "#!/bin/sh\nREAL \"$@\"\n");
    let (code, out, err) = ctl(&dir.join("control.sock"), &["upgrade"]);
    assert_eq!(code, 0, "ctl upgrade: {out} {err}");
    let status = old.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "the old master hands over and exits 0; log:\n{}", old.raw_log().join("\n"));
    let new_master = new_master_pid(&old, old.pid());
    let said = old.raw_log().iter().any(|l| l.contains(NOT_THE_PARENT));
    assert!(said, "the new master says its parent is not the old master; log:\n{}", old.raw_log().join("\n"));
    // The reply and the old master's lines name the new master, not the
    // shell between them (until 2026-12-06 they named the shell's pid).
    assert!(out.starts_with(&format!("ok upgraded: pid {new_master} serves;")), "{out}");
    let done = format!("upgrade: done: every worker of this master has exited; pid {new_master} serves");
    assert!(old.raw_log().iter().any(|l| l.ends_with(&done)), "log:\n{}", old.raw_log().join("\n"));
    check_serves_then_stop(&old, &dir, new_master, &mut []);
}

/// The new master of an upgrade through a wrapper that does not `exec`,
/// never ready (one worker carries the `never-ready` fault), and the old
/// master, which gives the upgrade up either way: at `--shutdown-timeout`
/// (`stop` false) or when it is stopped (`stop` true). Nothing of the new
/// master may run on.
fn a_wrapped_new_master_given_up_is_not_left_running(stop: bool) {
    let dir = TempDir::new(if stop { "upgrade-wrapped-stop" } else { "upgrade-wrapped-late" });
    let binary = dir.install();
    let real = dir.join("ringmaster-real");
    copy_for_exec(Path::new(BIN), &real);
    let control = dir.join("control.sock");
    let args = [
        "--mode",
        "rr",
        "--workers",
        "2",
        "--no-pin",
        "--shutdown-timeout",
        "2",
        "--control",
        control.to_str().expect("UTF-8 path"),
    ];
    let mut old = Server::start_binary(&binary, &args);
    status_when(&control, 2, |_| true);
    let script = format!("#!/bin/sh\nRINGMASTER_FAULT=never-ready:0 {} \"$@\"\n", real.display());
    replace_by_rename(&binary, Replacement::Script(&script));
    let old_pid = old.pid();
    old.signal(libc::SIGUSR2);
    let new_master = new_master_pid(&old, old_pid);
    if stop {
        old.signal(libc::SIGTERM);
        let status = old.wait_exit(Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "log:\n{}", old.raw_log().join("\n"));
    } else {
        let failed = "upgrade failed: ";
        let gave_up = eventually(Duration::from_secs(10), || old.raw_log().iter().any(|l| l.contains(failed)));
        assert!(gave_up, "the old master gives the upgrade up; log:\n{}", old.raw_log().join("\n"));
    }
    let gone = eventually(Duration::from_secs(5), || !running(new_master));
    assert!(
        gone,
        "the new master (pid {new_master}), given up, still runs 5 s later (it and its workers: {:?}); log:\n{}",
        dir.running(),
        old.raw_log().join("\n")
    );
    if !stop {
        old.connect().get_ok();
        let (code, out, err) = ctl(&control, &["stop"]);
        assert_eq!((code, out.as_str()), (0, "ok stopping"), "{err}");
    }
    assert!(eventually(Duration::from_secs(10), || dir.running().is_empty()), "left: {:?}", dir.running());
}

#[test]
fn a_wrapped_new_master_not_ready_in_time_is_not_left_running() {
    a_wrapped_new_master_given_up_is_not_left_running(false);
}

#[test]
fn a_wrapped_new_master_given_up_at_the_old_masters_stop_is_not_left_running() {
    a_wrapped_new_master_given_up_is_not_left_running(true);
}
