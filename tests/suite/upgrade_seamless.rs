//! Issue 8, finding 2 (second half): `ringmaster ctl PATH upgrade` and
//! `SIGUSR2` start a new master from the file now at the path the master was
//! started from (replaced by rename, as cargo and package managers do); it
//! takes the listening socket and the control socket over, and once its
//! workers are ready the old master stops accepting, drains and exits 0 —
//! under load (churn and busy keep-alive clients), in every mode, without one
//! failed request; and connections that wait in the listener's queue
//! meanwhile are the new master's, never reset. In `reuseport` mode every worker slot's own listener is handed
//! down too, each to the same slot of the new master.

use crate::util;

use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use util::control::{ctl, parse_status, Control};
use util::load::{Load, LOAD_PAUSE};
use util::procs::{stop, ContinueOnDrop};
use util::upgrade::{
    parent_of, parse_new_master, replace_by_rename, status_when, wait_gone, worker_pids, Replacement, TempDir,
};
use util::*;

/// How the upgrade is asked for.
#[derive(Clone, Copy, Debug)]
enum Ask {
    Command,
    Sigusr2,
}

/// A master started from a copy of the binary in `dir`, with two workers and
/// a control socket there; its workers' pids once all are ready. (The suite
/// runs again on epoll, `scripts/test.sh`: so do these upgrades.)
fn start_old(dir: &TempDir, mode: &str) -> (Server, Vec<u32>) {
    start_old_with(dir, mode, &[])
}

/// [`start_old`] with `extra` arguments (`--bind [::]:0`, say).
fn start_old_with(dir: &TempDir, mode: &str, extra: &[&str]) -> (Server, Vec<u32>) {
    let binary = dir.install();
    let control = dir.join("control.sock");
    let control = control.to_str().expect("UTF-8 path");
    let mut args = vec!["--mode", mode, "--workers", "2", "--no-pin", "--control", control];
    args.extend_from_slice(extra);
    let old = Server::start_binary(&binary, &args);
    let workers = worker_pids(&status_when(&dir.join("control.sock"), 2, |_| true));
    (old, workers)
}

/// Asks for the upgrade; the new master's pid, from the old master's log.
fn upgrade(old: &Server, control: &Path, ask: Ask) -> u32 {
    let mark = old.log_len();
    match ask {
        Ask::Command => {
            let (code, out, err) = ctl(control, &["upgrade"]);
            assert_eq!(code, 0, "ctl upgrade: {out} {err}");
            assert!(out.starts_with("ok upgraded: pid "), "ctl upgrade: {out}");
        }
        Ask::Sigusr2 => old.signal(libc::SIGUSR2),
    }
    let (_, started) =
        old.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), Duration::from_secs(10));
    parse_new_master(&started).unwrap_or_else(|| panic!("no pid in {started:?}"))
}

/// Checks the old master's exit and what it said on the way.
fn check_old_master_left(old: &mut Server) {
    check_old_master_left_or_stopped_by(old, None);
}

/// [`check_old_master_left`], for an old master sent `signal` (its name)
/// as the upgrade went on: one that came between "is ready" and the end
/// of its accepting stops it as a plain stop would ("SIGQUIT received:
/// stopping 2 workers"), in place of "no longer accepts" (seen beside two
/// busy loops, the test thread late).
fn check_old_master_left_or_stopped_by(old: &mut Server, signal: Option<&str>) {
    let status = old.wait_exit(Duration::from_secs(30));
    let log = old.log();
    assert_eq!(status.code(), Some(0), "the old master exits 0 once it has drained; log:\n{}", log.join("\n"));
    let stopped = signal.map(|name| format!("{name} received: stopping 2 workers"));
    for step in ["is ready: this master", "no longer accepts: draining 2 workers", "upgrade: done"] {
        let said = |l: &String| {
            l.contains(step) || (step.starts_with("no longer") && stopped.as_ref().is_some_and(|s| l.contains(s)))
        };
        assert!(log.iter().any(said), "no log line saying '{step}'; log:\n{}", log.join("\n"));
    }
}

/// Stops the new master on its control socket; it and its workers must end
/// by themselves, and leave no control socket behind.
fn stop_new_master(dir: &TempDir, new_master: u32, workers: &[u32]) {
    let control = dir.join("control.sock");
    let (code, out, err) = ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"), "{err}");
    let mut pids = workers.to_vec();
    pids.push(new_master);
    let left = wait_gone(&pids, Duration::from_secs(15));
    assert!(left.is_empty(), "still running after the new master was stopped: {left:?}");
    assert!(!control.exists(), "the new master removes the control socket once it is done");
    assert!(dir.running().is_empty(), "processes left: {:?}", dir.running());
}

fn upgrade_under_load(mode: &str, ask: Ask) {
    let dir = TempDir::new(&format!("upgrade-{mode}-{ask:?}"));
    let control = dir.join("control.sock");
    let (mut old, before) = start_old(&dir, mode);
    let load = Load::start(old.addr(), 4, 1_000_000, Duration::from_secs(90), LOAD_PAUSE);
    // Busy keep-alive clients too: drained, each is told `Connection: close`
    // on an answer and goes on through a new connection, losing nothing.
    let keepalive = Load::start_keepalive(old.addr(), 4, Duration::from_secs(90), LOAD_PAUSE);
    load.wait_ok(100, Duration::from_secs(10));
    keepalive.wait_ok(100, Duration::from_secs(10));

    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let new_master = upgrade(&old, &control, ask);
    check_old_master_left(&mut old);

    // The new master runs the file now at the path, and answers on the control socket.
    let exe = std::fs::read_link(format!("/proc/{new_master}/exe")).expect("the new master's exe");
    assert_eq!(exe, dir.join("ringmaster"), "the new master runs the new file");
    let after = status_when(&control, 2, |w| w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32))));
    let workers = worker_pids(&after);
    for &pid in &workers {
        assert_eq!(parent_of(pid), Some(new_master), "worker pid {pid} is the new master's: {after}");
    }

    // The load goes on, through the new master, and nothing ever failed.
    for (kind, load) in [("churn", load), ("keep-alive", keepalive)] {
        let answered = load.ok();
        load.wait_ok(answered + 100, Duration::from_secs(10));
        let (ok, failures) = load.finish();
        let tried = ok + failures.len() as u64;
        assert!(failures.is_empty(), "{kind}: {} of {tried} requests failed: {failures:?}", failures.len());
    }
    let (_, status, _) = ctl(&control, &["status"]);
    assert!(stats_totals(&parse_status(&status)).1 >= 100, "the new master counts from zero what it served: {status}");

    stop_new_master(&dir, new_master, &workers);
}

#[test]
fn ctl_upgrade_under_load_in_rr_mode_fails_no_request() {
    upgrade_under_load("rr", Ask::Command);
}

#[test]
fn ctl_upgrade_under_load_in_shared_mode_fails_no_request() {
    upgrade_under_load("shared", Ask::Command);
}

#[test]
fn sigusr2_upgrades_under_load_in_rr_mode() {
    upgrade_under_load("rr", Ask::Sigusr2);
}

#[test]
fn sigusr2_upgrades_under_load_in_shared_mode() {
    upgrade_under_load("shared", Ask::Sigusr2);
}

#[test]
fn ctl_upgrade_under_load_in_least_mode_fails_no_request() {
    upgrade_under_load("least", Ask::Command);
}

#[test]
fn ctl_upgrade_under_load_in_reuseport_mode_fails_no_request() {
    upgrade_under_load("reuseport", Ask::Command);
}

/// `[::]` in `reuseport` mode (an anchor and a listener per slot, all
/// IPv6, dual-stack): churn to `[::1]` and to `127.0.0.1` (IPv4-mapped)
/// goes on through the upgrade, through the new master's workers, without
/// one failed request.
#[test]
fn ctl_upgrade_of_an_ipv6_wildcard_in_reuseport_mode_fails_no_request() {
    let dir = TempDir::new("upgrade-ipv6");
    let control = dir.join("control.sock");
    let (mut old, before) = start_old_with(&dir, "reuseport", &["--bind", "[::]:0"]);
    let port = old.addr().port();
    let to = [
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
    ];
    let loads = to.map(|to| Load::start(to, 2, 1_000_000, Duration::from_secs(90), LOAD_PAUSE));
    for load in &loads {
        load.wait_ok(50, Duration::from_secs(10));
    }
    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let new_master = upgrade(&old, &control, Ask::Command);
    check_old_master_left(&mut old);
    let after = status_when(&control, 2, |w| w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32))));
    let workers = worker_pids(&after);
    for (to, load) in to.iter().zip(loads) {
        let answered = load.ok();
        load.wait_ok(answered + 50, Duration::from_secs(10));
        let (ok, failures) = load.finish();
        let tried = ok + failures.len() as u64;
        assert!(failures.is_empty(), "to {to}: {} of {tried} requests failed: {failures:?}", failures.len());
    }
    stop_new_master(&dir, new_master, &workers);
}

/// The socket inode behind fd `fd` of process `pid`.
fn socket_inode(pid: u32, fd: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

#[test]
fn reuseport_slot_listeners_are_handed_to_the_same_slots_of_the_new_master() {
    let dir = TempDir::new("upgrade-reuseport-slots");
    let control = dir.join("control.sock");
    let (mut old, before) = start_old(&dir, "reuseport");
    // Worker ids 1 and 2, in order: each one's listener (fd 5) by id.
    let old_listeners: Vec<u64> =
        before.iter().map(|&pid| socket_inode(pid, 5).expect("an old worker's listener")).collect();
    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let new_master = upgrade(&old, &control, Ask::Command);
    check_old_master_left(&mut old);
    let after = status_when(&control, 2, |w| w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32))));
    let workers = worker_pids(&after);
    let new_listeners: Vec<u64> =
        workers.iter().map(|&pid| socket_inode(pid, 5).expect("a new worker's listener")).collect();
    assert_eq!(new_listeners, old_listeners, "each slot keeps its listener, and its queue, across the upgrade");
    stop_new_master(&dir, new_master, &workers);
}

/// Nobody accepts for a while (the new master and its workers are stopped)
/// while the old master leaves: connections wait in the listener's queue,
/// which outlives the old master, and the new master answers them all.
fn queued_connections_go_to_the_new_master(mode: &str) {
    let dir = TempDir::new(&format!("upgrade-queue-{mode}"));
    let control = dir.join("control.sock");
    let (mut old, before) = start_old(&dir, mode);
    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let new_master = upgrade(&old, &control, Ask::Command);
    let new_workers: Vec<u32> = {
        let after = status_when(&control, 2, |w| w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32))));
        worker_pids(&after)
    };
    let mut stopped = Vec::new();
    for &pid in new_workers.iter().chain([&new_master]) {
        stopped.push(stop(pid));
    }
    check_old_master_left(&mut old);

    const QUEUED: usize = 20;
    let mut waiting: Vec<Conn> = (0..QUEUED).map(|_| old.connect()).collect();
    for conn in &mut waiting {
        conn.send(GET_CLOSE);
    }
    stopped.into_iter().for_each(ContinueOnDrop::continue_now);
    for (i, conn) in waiting.iter_mut().enumerate() {
        let answer = conn.try_read().unwrap_or_else(|e| panic!("queued connection {i} of {QUEUED}: {e}"));
        check_ok(&answer);
    }
    stop_new_master(&dir, new_master, &new_workers);
}

#[test]
fn rr_connections_queued_during_the_hand_over_are_answered_by_the_new_master() {
    queued_connections_go_to_the_new_master("rr");
}

#[test]
fn shared_connections_queued_during_the_hand_over_are_answered_by_the_new_master() {
    queued_connections_go_to_the_new_master("shared");
}

#[test]
fn reuseport_connections_queued_during_the_hand_over_are_answered_by_the_new_master() {
    queued_connections_go_to_the_new_master("reuseport");
}

/// `reuseport --steer load` (the default as root): the new master's program
/// steers to every handed-down listener at once, not only once the old
/// master has drained and gone (a listener sits in one steering map at a
/// time: the old master lets go of its maps as it hands over). One old
/// worker is kept stopped so that the old master is still draining.
#[test]
fn reuseport_new_master_steers_by_load_while_the_old_one_drains() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: steering by load needs root");
        return;
    }
    let dir = TempDir::new("upgrade-reuseport-steer");
    let control = dir.join("control.sock");
    let (mut old, before) = start_old(&dir, "reuseport");
    let old_master = old.pid();
    let stopped = stop(before[0]);
    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let new_master = upgrade(&old, &control, Ask::Command);
    let after = status_when(&control, 2, |w| {
        w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32))) && w["steer"].is_u64()
    });
    assert!(
        std::path::Path::new(&format!("/proc/{old_master}")).exists(),
        "the old master is still there (its worker {} is stopped): {after}",
        before[0]
    );
    stopped.continue_now();
    check_old_master_left(&mut old);
    stop_new_master(&dir, new_master, &worker_pids(&after));
}

/// The pid of worker `id` in a status.
fn pid_of(status: &serde_json::Value, id: u64) -> u32 {
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    let worker = workers.iter().find(|w| w["id"].as_u64() == Some(id));
    worker.and_then(|w| w["pid"].as_u64()).unwrap_or_else(|| panic!("no worker {id} in {status}")) as u32
}

/// Stops process `pid` (SIGSTOP), and waits until it has, until the guard is dropped.
fn stopped(pid: u32) -> ContinueOnDrop {
    let stopped = stop(pid);
    let state = || util::procs::process_state(pid);
    assert!(eventually(Duration::from_secs(5), || state() == Some('T')), "pid {pid} stops: {:?}", state());
    stopped
}

/// `reuseport --steer load`: before its program steers (the old master's
/// maps still hold every listener: the old master is stopped before it hands
/// over), a new master takes nothing from the queue of a worker of its own
/// that does not accept (here stopped): it could hand it to no worker its
/// program steers to, and the old master's worker on that listener, which
/// this master does not see, may still accept it. It once took them and held
/// them until the old master handed over (seconds on a busy machine, for
/// ever here), while the old worker there ran again. Here the old worker on
/// that listener is stopped too while the new master looks, then continued:
/// it answers every connection, the old master still stopped.
#[test]
fn reuseport_a_new_master_takes_nothing_from_a_shared_queue_before_its_program_steers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: steering by load needs root");
        return;
    }
    let dir = TempDir::new("upgrade-reuseport-untaken");
    let control = dir.join("control.sock");
    let binary = dir.install();
    let args = ["--mode", "reuseport", "--steer", "load", "--workers", "2", "--no-pin", "--control"];
    let mut old = Server::start_binary(&binary, &[&args[..], &[control.to_str().expect("UTF-8 path")]].concat());
    let before = status_when(&control, 2, |w| w["steer"].is_u64());
    let old_pids = worker_pids(&before);
    // Worker 1's listener: nobody accepts there once both its workers are stopped.
    let old_first = stopped(pid_of(&before, 1));
    let listener = socket_inode(old_first.pid(), 5).expect("worker 1's listener");

    replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
    let mark = old.log_len();
    old.signal(libc::SIGUSR2);
    let (_, started) =
        old.wait_for_log_from(mark, |l| l.contains("upgrade: new master started (pid "), Duration::from_secs(10));
    // Stopped before the new master is ready (it has yet to start its
    // workers), the old master keeps its maps until it is continued.
    let old_master = stopped(old.pid());
    let new_master = parse_new_master(&started).unwrap_or_else(|| panic!("no pid in {started:?}"));
    let after = status_when(&control, 2, |w| w["pid"].as_u64().is_some_and(|p| !old_pids.contains(&(p as u32))));
    if old.log().iter().any(|l| l.contains("is ready: this master")) {
        // The new master was quicker than the stop: its program steers
        // already, and nothing here would wait. A race this run lost.
        eprintln!("skipped: the new master was ready before the old one stopped");
        drop(old_master);
        drop(old_first);
        check_old_master_left(&mut old);
        stop_new_master(&dir, new_master, &worker_pids(&after));
        return;
    }
    let new_first = stopped(pid_of(&after, 1));

    // The kernel's hash places these (the new program has no listener yet):
    // some on worker 1's listener, where nobody accepts now; the queue
    // only grows meanwhile.
    const CLIENTS: usize = 16;
    let mut clients = Vec::with_capacity(CLIENTS);
    let mut queued = 0;
    for _ in 0..CLIENTS {
        let mut conn = old.connect();
        conn.send(GET_CLOSE);
        clients.push(conn);
        queued = queued.max(util::sockets::accept_queue(listener).unwrap_or(0));
    }
    assert!(queued > 0, "none of {CLIENTS} connections waited on worker 1's listener");
    // The new master looks every 5 ms and counts a queue waiting 20 ms
    // without its worker accepting as a stall: given 2 s, it would have
    // taken them by now.
    let taken = eventually(Duration::from_secs(2), || util::sockets::accept_queue(listener) < Some(queued));
    assert!(!taken, "the new master took what waits on worker 1's listener, with no worker its program steers to");

    // The old worker there runs again: it answers them, the old master still stopped.
    drop(old_first);
    for (i, conn) in clients.iter_mut().enumerate() {
        conn.stream().set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        let answer = conn.try_read().unwrap_or_else(|e| panic!("connection {i} of {CLIENTS}: {e}"));
        check_ok(&answer);
    }
    drop(new_first);
    drop(old_master);
    check_old_master_left(&mut old);
    stop_new_master(&dir, new_master, &worker_pids(&after));
}

/// Once `ctl upgrade` has answered, the old master's workers are lame ducks:
/// a health probe on a connection one of them holds, sent as soon as the
/// reply is read, gets `503` (until 2026-12-06 it got `200` until their
/// drain began a moment later: in 3 of 5 runs of this test). Two connections
/// are kept busy in turn while the upgrade runs, so that each is fresh
/// enough to be answered once the drain begins; the probe goes on one whose
/// answers never said `Connection: close`. (Until 2026-12-08 there was one
/// connection: a request on it that crossed the drain's start was answered
/// with `Connection: close`, and the probe then met a closed connection, in
/// one CI run.) The master writes the reply before it drains, so at most one
/// request crosses the drain's start before the reply is read.
#[test]
fn the_old_masters_workers_are_lame_ducks_once_the_upgrade_is_answered() {
    let dir = TempDir::new("upgrade-lame-ducks");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let args =
        ["--workers", "2", "--no-pin", "--health-path", "/healthz", "--control", control.to_str().expect("UTF-8")];
    let mut old = Server::start_binary(&binary, &args);
    status_when(&control, 2, |_| true);
    let mut probes = [old.connect(), old.connect()];
    let mut open = [true, true];
    let mut turn = 0;
    // A health probe closes its connection: before the reply the connections
    // are kept busy with plain requests, and the probe comes last.
    let ask = |probe: &mut Conn, path: &str| {
        probe.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        probe.try_read()
    };
    replace_by_rename(&binary, Replacement::Binary);
    let mut client = Control::connect(&control);
    client.r.get_ref().set_nonblocking(true).expect("a non-blocking control client");
    client.send(b"upgrade\n");
    let mut reply = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reply.ends_with(b"\n") {
        assert!(std::time::Instant::now() < deadline, "no reply to upgrade: {:?}", String::from_utf8_lossy(&reply));
        match client.r.read_until(b'\n', &mut reply) {
            Ok(0) => panic!("the control socket closed: {:?}", String::from_utf8_lossy(&reply)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some(i) = (0..2).map(|k| (turn + k) % 2).find(|&i| open[i]) else {
                    panic!("both connections were answered with Connection: close before the upgrade's reply")
                };
                turn = i + 1;
                let before = ask(&mut probes[i], "/");
                let answer = before.as_ref().unwrap_or_else(|e| panic!("before the upgrade's reply: {e}"));
                assert_eq!(answer.status, 200, "before the upgrade's reply");
                open[i] = !answer.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            }
            Err(e) => panic!("reading the reply to upgrade: {e}"),
        }
    }
    let Some(i) = (0..2).find(|&i| open[i]) else { panic!("no connection left open for the probe") };
    let after = ask(&mut probes[i], "/healthz").map(|answer| answer.status);
    let out = String::from_utf8_lossy(&reply).trim_end().to_string();
    assert!(out.starts_with("ok upgraded: pid "), "ctl upgrade: {out}");
    assert!(after.as_ref().is_ok_and(|&status| status == 503), "a probe right after the upgrade's reply: {after:?}");
    let new_master = out["ok upgraded: pid ".len()..].split(' ').next().and_then(|pid| pid.parse::<u32>().ok());
    let new_master = new_master.unwrap_or_else(|| panic!("no pid in {out:?}"));
    drop(probes);
    check_old_master_left(&mut old);
    let workers = worker_pids(&status_when(&control, 2, |_| true));
    stop_new_master(&dir, new_master, &workers);
}

/// One stop signal to the old master once it has handed over: it "drains
/// as it would anyway" (Binary upgrade), whichever of `SIGTERM`, `SIGQUIT`
/// and `SIGINT` it is, so a request its worker is still reading is
/// answered. (Until 2026-12-06 the hand-over's drain counted as a first
/// stop, so this one `SIGINT` was taken for a second one, `second SIGINT:
/// killing workers now`, and the upload got an end of stream, no answer.)
#[test]
fn one_stop_signal_to_an_old_master_that_handed_over_lets_its_workers_drain() {
    for (name, signo) in [("SIGTERM", libc::SIGTERM), ("SIGQUIT", libc::SIGQUIT), ("SIGINT", libc::SIGINT)] {
        let dir = TempDir::new(&format!("upgrade-then-{name}"));
        let control = dir.join("control.sock");
        let (mut old, _) = start_old(&dir, "rr");
        // Half a body: the old master's worker holds the request when the upgrade comes.
        let mut upload = old.connect();
        upload.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345");
        let held = eventually(IO_TIMEOUT, || {
            let (_, out, _) = ctl(&control, &["status"]);
            stats_totals(&parse_status(&out)).0 >= 1
        });
        assert!(held, "the upload reached a worker");

        replace_by_rename(&dir.join("ringmaster"), Replacement::Binary);
        let new_master = upgrade(&old, &control, Ask::Command);
        old.signal(signo);
        // Whichever way the old master takes it, it says so before the body's rest is sent.
        old.wait_for_log(|l| l.contains(&format!("{name} received")) || l.contains("second SIGINT"), IO_TIMEOUT);
        let answer = upload.try_send(b"67890").and_then(|()| upload.try_read());
        let log = old.log();
        assert!(
            answer.as_ref().is_ok_and(|r| r.status == 200),
            "{name} after the hand-over: the upload got {answer:?}, not 200; log:\n{}",
            log.join("\n")
        );
        check_old_master_left_or_stopped_by(&mut old, Some(name));
        let workers = worker_pids(&status_when(&control, 2, |_| true));
        stop_new_master(&dir, new_master, &workers);
    }
}
