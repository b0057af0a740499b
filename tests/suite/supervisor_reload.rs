//! Supervisor (issue 5): a rolling restart on SIGHUP loses nothing, and keeps
//! its order.
//!
//! While clients run continuously, SIGHUP (three times in a row) replaces the
//! workers one at a time:
//! every request gets a 200, no connection fails, every worker pid changes, each
//! new process runs on its worker's CPU, and each old one drains and exits 0
//! before the next worker is replaced. Both modes.
//!
//! The order within one worker's replacement (README: only when the new process
//! reports ready is the old one told to drain, and from that moment it gets no
//! new connection) is checked in the first round, with connections prepared on
//! each old process before the load starts:
//! - an idle keep-alive one: while the new process is held before it is ready
//!   (SIGSTOP), the old one still answers on it as usual, not draining; once the
//!   new one runs on, the old one closes it (it drains), and by then the stats
//!   show the new process ready;
//! - one with a request half sent, which keeps the draining old process alive:
//!   meanwhile new keep-alive connections are all answered without
//!   `Connection: close`, which a draining process would add (it took none of
//!   them); then the rest of the request is sent and answered, and it exits.
//!
//! The clients open a new connection per request and send `Connection: close`.
//! (With keep-alive, a draining worker closing an idle connection races with the
//! client's next request on it; real HTTP clients retry exactly that case, which
//! would hide real losses here.)
//!
//! A reload held up by an old process that cannot drain (SIGSTOPped, the
//! watchdog off): the master kills it `--shutdown-timeout` after it was told
//! to drain, and the reload goes on to the next worker; a reload asked for
//! meanwhile is refused, and one asked once it is done runs.

use crate::util;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use util::control::{control_path, ctl};
use util::load::{Load, LOAD_PAUSE};
use util::procs::{alive_ours, process_state, set_soft_fd_limit, stop, stop_and_check_no_process_left, ContinueOnDrop};
use util::stats::{num, per_worker, worker};
use util::*;

const WORKERS: u64 = 2;
const CLIENTS: usize = 4;

/// A POST whose body is 10 bytes, of which 5 are sent first.
const HALF_POST: &[u8] = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello";

// --- connections prepared on a worker's process -------------------------------------------

/// Connections on one (old) process of a worker, found before the load starts.
struct Prepared {
    /// Idle keep-alive, one request answered.
    idle: Conn,
    /// One request answered, then the first half of a POST.
    half: Conn,
}

/// Opens connections one at a time, telling from the stats which worker took
/// each (nothing else runs yet), until every worker holds an idle one and a
/// half-sent one, or 100 connections were tried; a worker the kernel never
/// chose (`shared`) gets None. The connections not kept are closed.
fn prepare(s: &Server) -> Vec<Option<Prepared>> {
    let mut idle: Vec<Option<Conn>> = (0..WORKERS).map(|_| None).collect();
    let mut half: Vec<Option<Conn>> = (0..WORKERS).map(|_| None).collect();
    let mut before = per_worker(&s.stats(), "accepted");
    for _ in 0..100 {
        if half.iter().all(Option::is_some) {
            break;
        }
        let mut c = s.connect();
        c.get_ok();
        let mut now = Vec::new();
        let counted = eventually(IO_TIMEOUT, || {
            now = per_worker(&s.stats(), "accepted");
            now.iter().sum::<u64>() == before.iter().sum::<u64>() + 1
        });
        assert!(counted, "a connection not counted: before {before:?}, now {now:?}");
        let w = (0..now.len()).find(|&i| now[i] == before[i] + 1).unwrap();
        before = now;
        if idle[w].is_none() {
            idle[w] = Some(c);
        } else if half[w].is_none() {
            c.send(HALF_POST);
            half[w] = Some(c);
        }
    }
    idle.into_iter().zip(half).map(|(i, h)| Some(Prepared { idle: i?, half: h? })).collect()
}

// --- the test -------------------------------------------------------------------------------

/// Rolling restarts done back to back while the load runs.
const ROUNDS: usize = 3;

fn sighup_under_load_loses_nothing(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", &WORKERS.to_string()]);
    let first = s.wait_workers_ready(WORKERS as usize, Duration::from_secs(5));
    let mut current: Vec<(u64, u64)> = (1..=WORKERS)
        .map(|id| {
            let w = worker(&first, id).unwrap_or_else(|| panic!("worker {id} missing: {first}"));
            (num(&w, "pid"), num(&w, "cpu"))
        })
        .collect();
    let mut every_pid: BTreeSet<u64> = current.iter().map(|&(p, _)| p).collect();
    let mut prepared = prepare(&s);
    if mode == "rr" {
        assert!(prepared.iter().all(Option::is_some), "rr deals in turn: every worker got its connections");
    }

    let load = Load::start(s.addr(), CLIENTS, 20_000, Duration::from_secs(20), LOAD_PAUSE);
    load.wait_ok(300, Duration::from_secs(10));

    for round in 1..=ROUNDS {
        let ok_at_start = load.ok();
        let probes = if round == 1 { Some(&mut prepared) } else { None };
        current = rolling_restart(&s, &current, round, probes);
        for &(pid, _) in &current {
            assert!(every_pid.insert(pid), "round {round}: pid {pid} was used before");
        }
        // The load kept going through the round and goes on after it.
        let ok_now = load.ok();
        load.wait_ok(ok_now + 200, Duration::from_secs(10));
        eprintln!("{mode}: round {round}: {} answers during the restart", ok_now - ok_at_start);
    }

    let (ok, failures) = load.finish();
    eprintln!("{mode}: {ok} answers, {} failures across {ROUNDS} reloads", failures.len());
    assert!(failures.is_empty(), "{} of {} requests failed across the reloads: {failures:?}", failures.len(), ok);
    assert!(
        !s.log().iter().any(|l| l.contains("killed by signal") || l.contains("restarting in")),
        "nothing crashed during the reloads: {:?}",
        s.log()
    );
    stop_and_check_no_process_left(s);
}

/// Sends SIGHUP and follows the rolling restart of `old` (pid, cpu per worker
/// id 1..); returns the new (pid, cpu) per worker. With `probes`, checks the
/// order of each replacement with the connections prepared on the old processes.
fn rolling_restart(
    s: &Server,
    old: &[(u64, u64)],
    round: usize,
    mut probes: Option<&mut Vec<Option<Prepared>>>,
) -> Vec<(u64, u64)> {
    let from = s.log_len();
    s.signal(libc::SIGHUP);
    let (mut at, _) = s.wait_for_log_from(
        from,
        |l| l == format!("reload: replacing {WORKERS} workers one at a time"),
        Duration::from_secs(2),
    );
    // One at a time: worker N's new process starts on its CPU, the old one exits
    // with 0 (it drained), and only then does worker N+1's replacement start.
    let mut new = Vec::new();
    for (i, &(old_pid, cpu)) in old.iter().enumerate() {
        let id = i + 1;
        let prefix = format!("worker {id} started (pid ");
        let (i_start, line) = s.wait_for_log_from(at, |l| l.starts_with(&prefix), Duration::from_secs(5));
        let new_pid: u64 = line[prefix.len()..].split(',').next().unwrap().parse().unwrap();
        let mine = probes.as_mut().and_then(|p| p[i].take());
        match mine {
            Some(prepared) => check_replacement_order(s, id as u64, old_pid, new_pid, prepared),
            None if probes.is_some() => eprintln!("worker {id}: no connection of its old process to probe with"),
            None => {}
        }
        assert!(
            line.ends_with(&format!(", cpu {cpu}, replacing pid {old_pid})")),
            "round {round}: worker {id} replaced on its CPU: {line}"
        );
        let gone = format!("worker {id} (pid {old_pid}) ");
        // Its exit line (a busy machine may also log it lagging and catching up).
        let exited = |l: &str| l.starts_with(&gone) && (l.contains(") exited with") || l.contains(") killed by"));
        let (i_exit, exit) = s.wait_for_log_from(from, exited, Duration::from_secs(10));
        assert_eq!(exit, format!("{gone}exited with code 0"), "round {round}: old worker {id} must drain and exit 0");
        assert!(i_exit > i_start, "round {round}: worker {id}'s old process exited before its replacement started");
        // It drained only once its replacement was ready: by its exit, the
        // stats show the new process ready.
        let st = s.stats();
        let w = worker(&st, id as u64).unwrap_or_else(|| panic!("worker {id} missing: {st}"));
        assert_eq!(
            (num(&w, "pid"), w["state"].as_str()),
            (new_pid, Some("ready")),
            "round {round}: worker {id}'s old process exited, its replacement is not ready: {st}"
        );
        new.push((new_pid, cpu));
        at = i_exit + 1;
    }

    // The new processes are the workers now, ready, on the same CPUs.
    let last = s.wait_workers_ready(WORKERS as usize, Duration::from_secs(2));
    for (i, &(old_pid, cpu)) in old.iter().enumerate() {
        let w = worker(&last, i as u64 + 1).unwrap();
        assert_eq!(num(&w, "pid"), new[i].0, "round {round}: {last}");
        assert_ne!(num(&w, "pid"), old_pid, "round {round}: worker {} kept its pid: {last}", i + 1);
        assert_eq!(num(&w, "cpu"), cpu, "{last}");
        assert_eq!(num(&w, "restarts"), 0, "a reload is not a crash restart: {last}");
        assert!(!alive_ours(old_pid as u32), "round {round}: old pid {old_pid} still running");
    }
    new
}

/// True if `line` says worker `id`'s process `pid` is gone (its exit or
/// kill), not any line about it: a busy machine also logs a worker lagging
/// and catching up ("worker 2 (pid 5687) is not keeping up ...").
fn gone(line: &str, id: u64, pid: u64) -> bool {
    line.strip_prefix(&format!("worker {id} (pid {pid}) "))
        .is_some_and(|rest| rest.starts_with("exited with") || rest.starts_with("killed by"))
}

/// Worker `id`'s old process `old_pid` is being replaced by `new_pid`, just
/// logged as started; `p` holds connections on the old process.
fn check_replacement_order(s: &Server, id: u64, old_pid: u64, new_pid: u64, mut p: Prepared) {
    // Hold the new process. If it is not ready yet, it cannot become ready
    // while stopped: the old one must not be draining meanwhile.
    let held = stop(new_pid as u32);
    assert!(eventually(IO_TIMEOUT, || process_state(new_pid as u32) == Some('T')), "new worker {new_pid} not stopped");
    let st = s.stats();
    let w = worker(&st, id).unwrap_or_else(|| panic!("worker {id} missing: {st}"));
    assert_eq!(num(&w, "pid"), new_pid, "{st}");
    if w["state"] == "starting" {
        let resp = p.idle.request(GET);
        check_ok(&resp);
        assert!(
            !resp.has_connection("close"),
            "worker {id}: the old process {old_pid} drains before its replacement {new_pid} is ready: {resp:?} ({st})"
        );
        assert!(!s.log().iter().any(|l| gone(l, id, old_pid)), "old process {old_pid} gone early: {:?}", s.log());
        eprintln!(
            "worker {id}: replacement {new_pid} held before ready; the old process {old_pid} still serves as usual"
        );
    } else {
        eprintln!("worker {id}: replacement {new_pid} was already {} when stopped: hold skipped", w["state"]);
    }
    drop(held);

    // The new process runs on and gets ready; then the old one drains: it
    // closes its idle connection. By then the new one is ready in the stats.
    p.idle.expect_closed();
    let st = s.stats();
    let w = worker(&st, id).unwrap_or_else(|| panic!("worker {id} missing: {st}"));
    assert_eq!((num(&w, "pid"), w["state"].as_str()), (new_pid, Some("ready")), "old drains, new not ready: {st}");

    // The old process is draining and held alive by the half-sent request: it
    // takes no new connection. Every new keep-alive connection is answered
    // as usual; one it took would be answered with `Connection: close`.
    for k in 0..16 {
        let mut c = s.connect();
        let resp = c.request(GET);
        check_ok(&resp);
        assert!(!resp.has_connection("close"), "connection {k} went to the draining process {old_pid}: {resp:?}");
    }
    assert!(!s.log().iter().any(|l| gone(l, id, old_pid)), "the draining process {old_pid} left early: {:?}", s.log());

    // The rest of the request: answered by the draining process, which closes.
    p.half.send(b"world");
    let resp = p.half.read();
    check_ok(&resp);
    assert!(resp.has_connection("close"), "an answer during the drain closes the connection: {resp:?}");
    p.half.expect_closed();
}

#[test]
fn rr_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("rr");
}

#[test]
fn shared_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("shared");
}

#[test]
fn least_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("least");
}

#[test]
fn reuseport_sighup_rolling_restart_loses_nothing() {
    sighup_under_load_loses_nothing("reuseport");
}

// --- a reload held up by a stopped old process ----------------------------------------------

/// Two `rr` workers, `--shutdown-timeout 2`, the watchdog off (it would kill
/// the stopped process itself, after 30 s) and a control socket; worker 1's
/// process stopped (SIGSTOP) before any reload.
struct Held {
    s: Server,
    path: PathBuf,
    /// The pids of workers 1 and 2 at start.
    old: [u32; 2],
    _stopped: ContinueOnDrop,
}

fn worker_1_stopped(name: &str) -> Held {
    let path = control_path("reload", name);
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().unwrap().to_string();
    let args = ["--mode", "rr", "--workers", "2", "--shutdown-timeout", "2", "--watchdog", "0", "--control", &control];
    let s = Server::start(&args);
    let st = s.wait_workers_ready(2, Duration::from_secs(5));
    let old =
        [1, 2].map(|id| num(&worker(&st, id).unwrap_or_else(|| panic!("worker {id} missing: {st}")), "pid") as u32);
    let stopped = stop(old[0]);
    assert!(eventually(IO_TIMEOUT, || process_state(old[0]) == Some('T')), "worker 1 ({}) not stopped", old[0]);
    Held { s, path, old, _stopped: stopped }
}

/// The pids of workers 1 and 2 once both are ready, none of them in `old`.
fn replaced(s: &Server, old: &[u32]) -> [u32; 2] {
    let st = s.wait_workers_ready(2, Duration::from_secs(5));
    let new =
        [1, 2].map(|id| num(&worker(&st, id).unwrap_or_else(|| panic!("worker {id} missing: {st}")), "pid") as u32);
    assert!(new.iter().all(|p| !old.contains(p)), "not every worker replaced: old {old:?}, now {st}");
    for (id, w) in [1, 2].map(|id| (id, worker(&st, id).unwrap())) {
        assert_eq!(num(&w, "restarts"), 0, "worker {id}: a reload is not a crash restart: {st}");
    }
    for &p in old {
        assert!(!alive_ours(p), "old worker pid {p} still running");
    }
    new
}

#[test]
fn a_stopped_old_process_is_killed_after_the_shutdown_timeout_and_the_reload_goes_on() {
    let Held { s, path, old: [old1, old2], _stopped } = worker_1_stopped("stopped-old");
    let from = s.log_len();
    let asked = Instant::now();
    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"), "{err}");

    // Worker 1's new process starts and gets ready; the old one, told to
    // drain, cannot: 3 s later (the timeout and a second) the master kills it.
    let killing =
        format!("reload: worker 1 (pid {old1}) still running a second after --shutdown-timeout 2.0 s: killing it");
    let (i_kill, _) = s.wait_for_log_from(from, |l| l == killing, Duration::from_secs(10));
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "killed before --shutdown-timeout and a second: {:?}",
        asked.elapsed()
    );
    let killed = format!("worker 1 (pid {old1}) killed by signal 9 (SIGKILL) after overrunning its drain");
    s.wait_for_log_from(i_kill, |l| l == killed, Duration::from_secs(5));

    // Only then is worker 2 replaced, and its old process drains and exits 0.
    let replacing = |l: &str| l.starts_with("worker 2 started (pid ") && l.contains(", replacing pid ");
    assert!(
        !s.log()[from..i_kill].iter().any(|l| replacing(l)),
        "worker 2 replaced before worker 1's old process went"
    );
    let (i_start, line) = s.wait_for_log_from(i_kill, replacing, Duration::from_secs(5));
    assert!(line.ends_with(&format!(", replacing pid {old2})")), "{line}");
    let drained = format!("worker 2 (pid {old2}) exited with code 0");
    s.wait_for_log_from(i_start, |l| l == drained, Duration::from_secs(10));
    s.wait_for_log_from(i_start, |l| l == "reload: done (2 workers replaced)", Duration::from_secs(5));

    replaced(&s, &[old1, old2]);
    let log = s.log();
    assert!(!log[from..].iter().any(|l| l.contains("restarting in")), "a reload's kill is no crash: {log:?}");
    for _ in 0..4 {
        s.connect().get_ok();
    }
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_reload_asked_while_one_is_under_way_is_refused_until_it_is_done() {
    let Held { s, path, old, _stopped } = worker_1_stopped("second-reload");
    let from = s.log_len();
    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"), "{err}");

    // Worker 1's old process holds the reload up (2 s): another one is
    // refused, on the socket and on SIGHUP, and starts nothing.
    let (code, out, _) = ctl(&path, &["reload"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "error: a reload is already under way (worker 1 being replaced, 1 more to go)"),
        "a second reload while the first waits on worker 1"
    );
    s.signal(libc::SIGHUP);
    s.wait_for_log_from(
        from,
        |l| l.starts_with("SIGHUP: a reload is already under way (worker ") && l.ends_with("): not reloading"),
        Duration::from_secs(5),
    );
    let (i_done, _) = s.wait_for_log_from(from, |l| l == "reload: done (2 workers replaced)", Duration::from_secs(15));
    let log = s.log();
    let begun = log[from..].iter().filter(|l| l.starts_with("reload: replacing ")).count();
    assert_eq!(begun, 1, "one reload ran: {log:?}");
    let first = replaced(&s, &old);

    // Once it is done, a reload is accepted and replaces every worker again.
    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"), "{err}");
    s.wait_for_log_from(i_done + 1, |l| l == "reload: done (2 workers replaced)", Duration::from_secs(10));
    replaced(&s, &first);
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

/// A reload that cannot start a new process stops there, logged; the master
/// and its old workers serve on. Here the master's open-file limit is cut,
/// while it runs, below the descriptors it already holds, so that even its
/// reserve for starts (`fd_reserve.rs`, whose numbers are then above the
/// limit) cannot give the new worker a channel; then it is put back. Before,
/// the error ended the master's loop, and the master with it.
#[test]
fn a_reload_that_cannot_start_a_process_leaves_the_master_serving() {
    let path = control_path("reload", "nofile");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let mut s = Server::start(&["--mode", "rr", "--workers", "2", "--control", &control]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let master = s.pid();
    // Below stdin, stdout and stderr: no new descriptor at all.
    let limit = set_soft_fd_limit(master, 3);

    let from = s.log_len();
    s.signal(libc::SIGHUP);
    let failed = |l: &str| l.starts_with("reload: cannot start a new process for worker 1: ");
    s.wait_for_log_from(from, failed, Duration::from_secs(10));
    set_soft_fd_limit(master, limit);
    assert!(s.is_running(), "the master exited: {:?}", &s.log()[from..]);
    let mut c = s.connect();
    c.get_ok();
    stop_and_check_no_process_left(s);
}

/// A reload whose new process exits before it is ready (here: its
/// `--body-file` is gone) is cancelled, the old process serving on as the
/// worker's own, and a later reload, once the cause is mended, runs. Before
/// 2026-12-06 the new process was restarted with the back-off for as long as
/// it failed, the reload stayed under way, and every later one was refused.
#[test]
fn a_reload_whose_new_process_exits_before_it_is_ready_is_cancelled() {
    let dir = std::env::temp_dir().join(format!("ringmaster-reload-exits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory of the test's own");
    let (file, away) = (dir.join("body"), dir.join("away"));
    std::fs::write(&file, "first\n").expect("the body file");
    let path = control_path("reload", "exits");
    let _ = std::fs::remove_file(&path);
    let (body_file, control) = (file.to_str().expect("UTF-8 path"), path.to_str().expect("UTF-8 path"));
    let s = Server::start(&["--mode", "rr", "--workers", "2", "--body-file", body_file, "--control", control]);
    let st = s.wait_workers_ready(2, START_TIMEOUT);
    let old = num(&worker(&st, 1).expect("worker 1"), "pid");

    std::fs::rename(&file, &away).expect("the body file moved away");
    let from = s.log_len();
    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!(code, 0, "reload: {out} {err}");
    let cancelled = format!("before it was ready: the reload is cancelled, the old process (pid {old}) keeps serving");
    let (at, line) = s.wait_for_log_from(from, |l| l.contains(&cancelled), Duration::from_secs(10));
    assert!(line.starts_with("reload: worker 1's new process (pid "), "{line}");
    assert!(
        !s.log()[from..=at].iter().any(|l| l.contains("restarting in")),
        "no restart planned: {:?}",
        &s.log()[from..]
    );
    let st = s.wait_workers_ready(2, Duration::from_secs(5));
    let w1 = worker(&st, 1).expect("worker 1");
    assert_eq!((num(&w1, "pid"), num(&w1, "restarts")), (old, 0), "the old process is worker 1's again: {st}");
    for _ in 0..4 {
        let r = s.connect().request(GET);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"first\n"[..]), "{r:?}");
    }

    std::fs::rename(&away, &file).expect("the body file back");
    std::fs::write(&file, "second\n").expect("the body file's new content");
    let from = s.log_len();
    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!((code, out.trim()), (0, "ok reloading 2 workers"), "a later reload runs: {err}");
    s.wait_for_log_from(from, |l| l == "reload: done (2 workers replaced)", Duration::from_secs(10));
    for _ in 0..4 {
        let r = s.connect().request(GET);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"second\n"[..]), "{r:?}");
    }
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_dir_all(&dir);
}
