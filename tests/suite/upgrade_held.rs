//! An upgrade's old master, once it has handed over, hands the connections
//! it held for workers that lagged to its workers before their drain, as a
//! stop does (`rr`, `least`): their requests, sent before the upgrade, are
//! answered `200`. Until 2026-12-05 it answered them `503` as its drain
//! began (stress run: both workers slow, `slow:1:20000,slow:2:20000`, 48
//! churning clients, `ctl upgrade`: 22 `503`s in `rr` and 6 in `least` on
//! epoll, all from the old master at its hand-over), though README says the
//! old master drains "as on SIGTERM (every request already sent is
//! answered)".
//!
//! Both old workers are stopped (SIGSTOP) so that they lag (their first
//! connections unacknowledged, or held if their heartbeats went stale
//! first) and the master holds what comes next; every step waits for what the
//! stats, the metrics and the log show.

use crate::util;

use std::time::Duration;

use util::control::ctl;
use util::held::{answers, both_workers_lagging, client_sent, held, Lagging};
use util::ops::metrics_addr;
use util::procs::send_signal;
use util::upgrade::{parse_new_master, running, wait_gone, TempDir};
use util::*;

/// Connections the old master holds when it hands over.
const HELD: usize = 3;

fn held_connections_are_served_by_the_old_workers_at_an_upgrade(mode: &str) {
    // The binary under test itself (not a copy: the stop between turns and
    // its SIGCONT are for its processes only); the directory holds the socket.
    let dir = TempDir::new(&format!("upgrade-held-{mode}"));
    let control = dir.join("control.sock");
    let control_arg = control.to_str().expect("UTF-8 path");
    let args = ["--mode", mode, "--workers", "2", "--no-pin", "--metrics", "127.0.0.1:0", "--control", control_arg];
    let mut s = Server::start(&args);
    let metrics_at = metrics_addr(&s);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    // Two clients in the workers' sockets, unacknowledged, or held; both workers seen lagging.
    let Lagging { guards, mut clients, held: held_first } = both_workers_lagging(&s, metrics_at, &ready, mode);
    for _ in held_first..HELD {
        clients.push(client_sent(&s));
    }
    assert!(eventually(Duration::from_secs(10), || held(metrics_at) == HELD as f64), "{mode}: {HELD} held");

    // The new master's workers are not stopped: it gets ready and takes over.
    let from = s.log_len();
    let (code, out, err) = ctl(&control, &["upgrade"]);
    assert!(code == 0 && out.starts_with("ok upgraded: pid "), "{mode}: ctl upgrade: {out} {err}");
    let (_, started) = s.wait_for_log_from(from, |l| l.contains("upgrade: new master started (pid "), IO_TIMEOUT);
    let new_master = NewMaster(parse_new_master(&started).unwrap_or_else(|| panic!("no pid in {started:?}")));
    s.wait_for_log_from(from, |l| l.starts_with("upgrade: this master no longer accepts"), IO_TIMEOUT);
    drop(guards);

    let answers = answers(&mut clients);
    let log = s.log()[from..].join("\n");
    assert!(answers.iter().all(|a| a == "200"), "{mode}: requests sent before the upgrade: {answers:?}; log:\n{log}");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "old master exit status {status}");
    // The new master serves; stopped, it exits with its workers.
    send_signal(new_master.0, libc::SIGTERM).expect("SIGTERM to the new master");
    assert!(wait_gone(&[new_master.0], Duration::from_secs(15)).is_empty(), "{mode}: the new master runs on");
}

/// The new master an upgrade started, killed if the test ends before it stops.
struct NewMaster(u32);

impl Drop for NewMaster {
    fn drop(&mut self) {
        if running(self.0) {
            let _ = send_signal(self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn rr_upgrade_serves_what_the_old_master_held() {
    held_connections_are_served_by_the_old_workers_at_an_upgrade("rr");
}

#[test]
fn least_upgrade_serves_what_the_old_master_held() {
    held_connections_are_served_by_the_old_workers_at_an_upgrade("least");
}
