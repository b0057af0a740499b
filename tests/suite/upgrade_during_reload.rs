//! An upgrade asked for while a rolling reload is under way is refused, as a
//! reload is while an upgrade is: by `ctl upgrade` with an `error:` reply, by
//! `SIGUSR2` in the log, and no new master is started. Once the reload is
//! over (here: its new process never gets ready, `never-ready`, and is
//! killed after `--shutdown-timeout`), the upgrade is accepted and the new
//! master serves. Before, the upgrade went ahead: at the hand-over the old
//! master drained the reload's new process with the rest, and the reload,
//! answered `ok`, ended without a word (no `reload: done`, no cancel).

use crate::util;

use std::process::Command;
use std::time::Duration;

use util::control::ctl;
use util::load::{Load, LOAD_PAUSE};
use util::upgrade::{parse_new_master, status_when, wait_gone, TempDir};
use util::*;

/// The stats slots a reload's new process may take with one worker (the
/// first one writes slot 0): none gets ready. The new master of the
/// upgrade, which inherits it, counts from slot 0 again.
const FAULT: &str = "never-ready:1,never-ready:2,never-ready:3";

#[test]
fn an_upgrade_during_a_reload_is_refused_until_the_reload_is_over() {
    let dir = TempDir::new("upgrade-during-reload");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let mut cmd = Command::new(binary);
    cmd.env("RINGMASTER_FAULT", FAULT);
    let args = ["--workers", "1", "--no-pin", "--shutdown-timeout", "2", "--control", control.to_str().expect("UTF-8")];
    let mut s = Server::start_command(cmd, &args);
    let old = worker_pid(&status_when(&control, 1, |_| true));
    let load = Load::start(s.addr(), 2, 1_000_000, Duration::from_secs(60), LOAD_PAUSE);
    load.wait_ok(50, Duration::from_secs(10));

    let (code, out, err) = ctl(&control, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 1 worker"), "{err}");
    let replacing = format!(", replacing pid {old})");
    let (i_started, line) = s.wait_for_log_from(
        0,
        |l| l.starts_with("worker 1 started (pid ") && l.ends_with(&replacing),
        Duration::from_secs(5),
    );
    let (_, new) = parse_worker_started(&line).expect("a started line");

    let refusal = "a reload is under way (worker 1 being replaced, 0 more to go): upgrade once it is done";
    let (code, out, _) = ctl(&control, &["upgrade"]);
    assert_eq!((code, out.as_str()), (1, format!("error: {refusal}").as_str()));
    let mark = s.log_len();
    s.signal(libc::SIGUSR2);
    s.wait_for_log_from(mark, |l| l == format!("upgrade (SIGUSR2) refused: {refusal}"), Duration::from_secs(5));

    // The reload ends as it would have: its new process killed, not drained by a hand-over.
    let cancelled = format!("reload: worker 1's new process (pid {new}) was not ready after 2.0 s");
    let (i_cancel, _) = s.wait_for_log_from(i_started, |l| l.starts_with(&cancelled), Duration::from_secs(10));
    let log = s.log();
    assert!(!log[..i_cancel].iter().any(|l| l.contains("upgrade: new master started")), "{log:?}");

    // Now the upgrade is accepted, and loses nothing.
    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert_eq!(code, 0, "ctl upgrade: {out} {err}");
    let line = s.wait_for_log(|l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let newest = parse_new_master(&line).expect("the new master's pid");
    assert_eq!(out, format!("ok upgraded: pid {newest} serves; pid {} drains its workers and exits", s.pid()));
    assert_eq!(s.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let (ok, failures) = load.finish();
    assert!(ok > 0 && failures.is_empty(), "{ok} answered; failed: {failures:?}");
    Conn::connect(s.addr()).get_ok();
    let (code, out, _) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    assert!(wait_gone(&[newest], Duration::from_secs(15)).is_empty());
}

/// The pid of the one worker in a status.
fn worker_pid(status: &serde_json::Value) -> u32 {
    util::upgrade::worker_pids(status)[0]
}
