//! Issue 8, finding 2 (second half), when the upgrade cannot happen: the new
//! file cannot be executed, is not ringmaster and exits 1, or never says it
//! is ready. The old master says why in its log and in an `error:` reply,
//! stops what it started, and keeps serving as before (same workers, no
//! failed request); a second upgrade while one is under way is refused, and
//! so are a reload and a scale.

use crate::util;

use std::process::Command;
use std::time::Duration;

use util::control::{ctl, send_then_read_to_end};
use util::load::{Load, LOAD_PAUSE};
use util::procs::set_soft_limit;
use util::upgrade::{parse_new_master, replace_by_rename, running, status_when, worker_pids, Replacement, TempDir};
use util::*;

/// A master started from a copy of the binary in `dir` (with `extra`
/// arguments), under load; the load and its workers' pids.
fn serving(dir: &TempDir, extra: &[&str]) -> (Server, Load, Vec<u32>) {
    let binary = dir.install();
    serving_command(dir, Command::new(binary), extra)
}

/// [`serving`] with the command that runs the copy in `dir` given.
fn serving_command(dir: &TempDir, command: Command, extra: &[&str]) -> (Server, Load, Vec<u32>) {
    let control = dir.join("control.sock");
    let mut args = vec!["--workers", "2", "--no-pin", "--control", control.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    let s = Server::start_command(command, &args);
    let workers = worker_pids(&status_when(&control, 2, |_| true));
    let load = Load::start(s.addr(), 2, 1_000_000, Duration::from_secs(90), LOAD_PAUSE);
    load.wait_ok(50, Duration::from_secs(10));
    (s, load, workers)
}

/// The old master still serves, with the same workers, and no request failed;
/// then it stops cleanly and leaves no process behind.
fn check_still_serving(mut s: Server, dir: &TempDir, load: Load, workers: &[u32]) {
    assert!(s.is_running(), "the old master keeps running");
    let control = dir.join("control.sock");
    let status = status_when(&control, 2, |_| true);
    assert_eq!(worker_pids(&status), workers, "the same workers serve: {status}");
    let answered = load.ok();
    load.wait_ok(answered + 50, Duration::from_secs(10));
    let (ok, failures) = load.finish();
    assert!(failures.is_empty(), "{} of {} requests failed: {failures:?}", failures.len(), ok + failures.len() as u64);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(!control.exists(), "the master that kept serving removes its control socket");
    assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
}

#[test]
fn a_new_file_that_is_not_executable_is_refused_and_the_old_master_serves_on() {
    let dir = TempDir::new("upgrade-noexec");
    let (s, load, workers) = serving(&dir, &[]);
    replace_by_rename(&dir.join("ringmaster"), Replacement::NotExecutable);
    let (code, out, _) = ctl(&dir.join("control.sock"), &["upgrade"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("error: upgrade failed: cannot start ") && out.contains("Permission denied"), "{out}");
    let line = s.wait_for_log(|l| l.contains("upgrade failed: cannot start "), Duration::from_secs(5));
    assert!(line.contains("keeps serving"), "{line}");
    assert!(!s.log().iter().any(|l| l.contains("new master started")), "nothing was started");
    check_still_serving(s, &dir, load, &workers);
}

#[test]
fn a_new_file_that_exits_1_fails_the_upgrade_and_the_old_master_serves_on() {
    let dir = TempDir::new("upgrade-exit1");
    let (s, load, workers) = serving(&dir, &[]);
    replace_by_rename(&dir.join("ringmaster"), Replacement::Script("#!/bin/sh\necho 'not ringmaster' >&2\nexit 1\n"));
    let (code, out, _) = ctl(&dir.join("control.sock"), &["upgrade"]);
    assert_eq!(code, 1, "{out}");
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let pid = parse_new_master(&started).expect("its pid");
    let reason = format!("the new master (pid {pid}) exited with code 1 before it was ready");
    assert_eq!(out, format!("error: upgrade failed: {reason}"));
    let line = s.wait_for_log(|l| l.contains("upgrade failed: "), Duration::from_secs(5));
    assert!(line.contains(&reason) && line.contains("keeps serving"), "{line}");
    assert!(!running(pid), "it was reaped");
    check_still_serving(s, &dir, load, &workers);
}

/// A new master whose workers cannot start with these limits (the old
/// master's address space lowered after its own workers started: the new
/// one inherits it) exits 1 at once with its `ERROR` line, and the upgrade
/// fails as for any new master that exits before it is ready. Before, it
/// restarted its workers forever and the upgrade waited for its timeout.
#[test]
fn a_new_master_whose_workers_cannot_start_fails_the_upgrade_and_the_old_master_serves_on() {
    let dir = TempDir::new("upgrade-cannot-reserve");
    let mut under = Command::new("prlimit");
    // 4096 x 64 KiB of header buffers per worker: more than 192 MiB leave.
    under.arg("--nofile=4096:4096").arg(dir.install());
    let (s, load, workers) = serving_command(&dir, under, &["--max-header", "65536"]);
    let unlimited = set_soft_limit(s.pid(), libc::RLIMIT_AS, 192 << 20);
    let (code, out, _) = ctl(&dir.join("control.sock"), &["upgrade"]);
    assert_eq!(code, 1, "{out}");
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let pid = parse_new_master(&started).expect("its pid");
    assert_eq!(
        out,
        format!("error: upgrade failed: the new master (pid {pid}) exited with code 1 before it was ready")
    );
    s.wait_for_log(|l| l.starts_with("no worker can start with these limits"), Duration::from_secs(5));
    let why = format!("ringmaster[{pid}]: no worker can start with these limits");
    assert!(s.raw_log().iter().any(|l| l.contains(" ERROR ") && l.contains(&why)), "the new master says why");
    let line = s.wait_for_log(|l| l.contains("upgrade failed: "), Duration::from_secs(5));
    assert!(line.contains("keeps serving"), "{line}");
    set_soft_limit(s.pid(), libc::RLIMIT_AS, unlimited);
    check_still_serving(s, &dir, load, &workers);
}

/// A client that ends its input after `upgrade` (as `printf 'upgrade\n' |
/// socat - UNIX-CONNECT:PATH` does) still gets the reply, which comes only
/// once the new master has failed. Before, the master closed such a client
/// at the end of its input and the reply was lost.
#[test]
fn a_client_that_ends_its_input_after_upgrade_still_gets_the_reply() {
    let dir = TempDir::new("upgrade-half-closed");
    let (s, load, workers) = serving(&dir, &[]);
    replace_by_rename(&dir.join("ringmaster"), Replacement::Script("#!/bin/sh\nexit 1\n"));
    let reply = send_then_read_to_end(&dir.join("control.sock"), b"upgrade\n").expect("the reply, then the end");
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let pid = parse_new_master(&started).expect("its pid");
    assert_eq!(
        reply,
        format!("error: upgrade failed: the new master (pid {pid}) exited with code 1 before it was ready\n")
    );
    check_still_serving(s, &dir, load, &workers);
}

#[test]
fn a_new_master_never_ready_is_stopped_after_the_timeout_and_a_second_upgrade_meanwhile_is_refused() {
    let dir = TempDir::new("upgrade-late");
    let control = dir.join("control.sock");
    let (s, load, workers) = serving(&dir, &["--shutdown-timeout", "5"]);
    // It keeps every fd it was handed and never says a word.
    replace_by_rename(&dir.join("ringmaster"), Replacement::Script("#!/bin/sh\nexec sleep 60\n"));
    let first = {
        let control = control.clone();
        std::thread::spawn(move || ctl(&control, &["upgrade"]))
    };
    let started = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let pid = parse_new_master(&started).expect("its pid");

    let (code, out, _) = ctl(&control, &["upgrade"]);
    assert_eq!(
        (code, out.as_str()),
        (1, format!("error: an upgrade is already under way (new master pid {pid})").as_str())
    );
    let mark = s.log_len();
    s.signal(libc::SIGUSR2);
    s.wait_for_log_from(
        mark,
        |l| l.contains("upgrade (SIGUSR2) refused: an upgrade is already under way"),
        Duration::from_secs(5),
    );
    // A reload or a scale now would be drained at the hand-over: refused,
    // not answered `ok` and dropped (until 2026-12-06).
    let refusal = format!("an upgrade is under way (new master pid {pid}): ask the new master once it serves");
    for command in [&["reload"][..], &["scale", "3"][..]] {
        let (code, out, _) = ctl(&control, command);
        assert_eq!((code, out.as_str()), (1, format!("error: {refusal}").as_str()), "{command:?}");
    }
    let mark = s.log_len();
    s.signal(libc::SIGHUP);
    s.wait_for_log_from(mark, |l| l.contains(&format!("SIGHUP: {refusal}: not reloading")), Duration::from_secs(5));

    let (code, out, _) = first.join().expect("the first ctl");
    let reason = format!("the new master (pid {pid}) was not ready within 5.0 s (--shutdown-timeout)");
    assert_eq!((code, out), (1, format!("error: upgrade failed: {reason}")));
    s.wait_for_log(|l| l.contains(&format!("upgrade: stopping the new master (pid {pid})")), Duration::from_secs(5));
    s.wait_for_log(
        |l| l.contains(&format!("upgrade: the new master (pid {pid}) killed by signal 15")),
        Duration::from_secs(5),
    );
    assert!(!running(pid), "it was stopped and reaped");
    check_still_serving(s, &dir, load, &workers);
}

/// A stop while the new master is not ready yet gives the upgrade up: the
/// log says so without claiming this master serves on (it is stopping),
/// with or without a drain delay. Before, the stop gave the upgrade up
/// before it counted as begun, and the line said "keeps serving".
#[test]
fn a_stop_during_an_upgrade_does_not_say_the_old_master_keeps_serving() {
    for delay in ["0", "1"] {
        let dir = TempDir::new("upgrade-stopped");
        let binary = dir.install();
        let control = dir.join("control.sock");
        let args =
            ["--workers", "1", "--no-pin", "--drain-delay", delay, "--control", control.to_str().expect("UTF-8")];
        let mut s = Server::start_binary(&binary, &args);
        status_when(&control, 1, |_| true);
        replace_by_rename(&dir.join("ringmaster"), Replacement::Script("#!/bin/sh\nexec sleep 60\n"));
        s.signal(libc::SIGUSR2);
        s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
        let mark = s.log_len();
        s.signal(libc::SIGTERM);
        let (_, line) = s.wait_for_log_from(
            mark,
            |l| l.starts_with("upgrade failed: this master is stopping"),
            Duration::from_secs(5),
        );
        assert!(!line.contains("keeps serving"), "--drain-delay {delay}: {line}");
        assert_eq!(s.wait_exit(Duration::from_secs(15)).code(), Some(0), "--drain-delay {delay}");
        assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
    }
}

/// A new master stopped before it is ready gives the upgrade up at once,
/// `--drain-delay` or not, and the old master serves on. Before, with a
/// drain delay, the new master served its delay as a lame duck and reported
/// ready meanwhile: the old master handed over to it and drained, and once
/// the delay was over nothing served (seen by a stress run: `SIGTERM` to the
/// new master 20 ms after `ctl upgrade`, then every connection refused).
#[test]
fn a_new_master_stopped_before_it_is_ready_does_not_take_over_even_with_a_drain_delay() {
    let dir = TempDir::new("upgrade-new-stopped");
    let (s, load, workers) = serving(&dir, &["--drain-delay", "1"]);
    let next = dir.join("next");
    util::upgrade::copy_for_exec(std::path::Path::new(BIN), &next);
    // The SIGTERM stays pending, blocked, across the exec: the new master
    // reads it at its first turn, before any of its workers is ready.
    let script = format!(
        "#!/bin/sh\nexec env --block-signal=TERM /bin/sh -c 'kill -TERM $$; exec \"$0\" \"$@\"' {} \"$@\"\n",
        next.display()
    );
    replace_by_rename(&dir.join("ringmaster"), Replacement::Script(&script));
    let mark = s.log_len();
    s.signal(libc::SIGUSR2);
    let (i, started) =
        s.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), Duration::from_secs(5));
    let pid = parse_new_master(&started).expect("its pid");
    let (_, line) = s.wait_for_log_from(i, |l| l.contains("upgrade failed: "), Duration::from_secs(10));
    assert!(
        line.contains(&format!("the new master (pid {pid}) exited with code 0 before it was ready"))
            && line.contains("keeps serving"),
        "{line}"
    );
    assert!(!s.log().iter().any(|l| l.contains("this master no longer accepts")), "the old master did not hand over");
    check_still_serving(s, &dir, load, &workers);
}
