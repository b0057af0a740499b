//! Issue 8, finding 1: running out of file descriptors must not wedge the
//! server. Under `prlimit --nofile=64:64` the master and both workers hit
//! their limit with 200 connections open; once the clients close, every
//! process gets its descriptors back and a new request is answered at once.
//! Before the fix a batch whose fds the kernel dropped (`MSG_CTRUNC`) was
//! never acknowledged, the master kept its copies forever, and `rr` never
//! answered again.

use crate::util;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::procs::open_fds;
use util::stats::per_worker;
use util::*;

/// Connections opened at once: far over what 64 descriptors per process hold.
const CONNECTIONS: usize = 200;

/// One request on a new connection; true when a 200 comes back.
fn answered(addr: SocketAddr) -> bool {
    Conn::answered_within(addr, Duration::from_millis(500)).is_some()
}

fn recovers_after_running_out_of_fds(mode: &str) {
    let s = Server::start_under(&["prlimit", "--nofile=64:64"], &["--mode", mode, "--workers", "2", "--no-pin"]);
    let stats = s.wait_workers_ready(2, START_TIMEOUT);
    let workers: Vec<u32> = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    let baseline: Vec<(u32, usize)> =
        std::iter::once(s.pid()).chain(workers.iter().copied()).map(|p| (p, open_fds(p))).collect();
    assert!(answered(s.addr()), "the server answers before the flood");

    // Each client sends a request, so the ones the server takes are busy and
    // the ones it cannot take are refused (503 and close) or wait in the queue.
    let mut flood = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        if let Ok(stream) = TcpStream::connect_timeout(&s.addr(), Duration::from_secs(2)) {
            let mut conn = Conn { r: std::io::BufReader::new(stream) };
            let _ = conn.try_send(GET);
            flood.push(conn);
        }
    }
    // The limit is reached and said so (checked at the end: what matters
    // first is that the server recovers).
    let logged = s.try_wait_for_log_from(0, |l| l.contains("open-file limit"), Duration::from_secs(10)).is_some();
    drop(flood);

    // Within 2 s of the clients closing, a new request is answered...
    assert!(
        eventually(Duration::from_secs(2), || answered(s.addr())),
        "{mode}: no request answered within 2 s after the clients closed; log:\n{}",
        s.log().join("\n")
    );
    // ...and every process is back to the descriptors it started with: no
    // copy of a closed connection is kept anywhere.
    for (pid, before) in baseline {
        assert!(
            eventually(Duration::from_secs(5), || open_fds(pid) <= before),
            "{mode}: pid {pid} holds {} fds, {before} before the flood",
            open_fds(pid)
        );
    }
    assert!(logged, "{mode}: running out of fds was not logged; log:\n{}", s.log().join("\n"));
}

#[test]
fn rr_recovers_after_running_out_of_fds() {
    recovers_after_running_out_of_fds("rr");
}

#[test]
fn shared_recovers_after_running_out_of_fds() {
    recovers_after_running_out_of_fds("shared");
}

#[test]
fn least_recovers_after_running_out_of_fds() {
    recovers_after_running_out_of_fds("least");
}

#[test]
fn reuseport_recovers_after_running_out_of_fds() {
    recovers_after_running_out_of_fds("reuseport");
}

/// Idle clients for [`shared_refuses_with_503_when_every_worker_is_out_of_fds`]:
/// more than two workers hold under 32 descriptors (on io_uring, 32 each in
/// their rings' tables of direct descriptors; on epoll, about 23 each).
const IDLE: usize = 80;

/// What an idle client has seen of the server so far, without waiting.
enum Seen {
    Nothing,
    Refused,
    /// A close or a reset with no answer, or something other than a `503`.
    Dropped(String),
}

fn seen(conn: &mut TcpStream) -> Seen {
    let _ = conn.set_nonblocking(true);
    let mut buf = [0u8; 512];
    match conn.read(&mut buf) {
        Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 503 ") => Seen::Refused,
        Ok(n) => Seen::Dropped(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Seen::Nothing,
        Err(e) => Seen::Dropped(e.to_string()),
    }
}

/// `shared` at the open-file limit keeps the promise `rr` keeps: when no
/// worker has a descriptor for another connection, the master answers `503`
/// and closes, counted in `refused`; no connection is taken and then closed
/// unanswered, none is left in the queue. Before the fix the master judged
/// "full" by `--max-conns` alone and never accepted: on io_uring an accept
/// into a full table of direct descriptors took a connection off the queue
/// and the kernel closed it; on epoll new clients waited until they gave up.
#[test]
fn shared_refuses_with_503_when_every_worker_is_out_of_fds() {
    let s = Server::start_under(
        &["prlimit", "--nofile=32:32"],
        &["--mode", "shared", "--workers", "2", "--no-pin", "--header-timeout", "60"],
    );
    s.wait_workers_ready(2, START_TIMEOUT);
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect_timeout(&s.addr(), IO_TIMEOUT).unwrap_or_else(|e| panic!("idle client {i}: {e}")))
        .collect();

    // Every idle client is held by a worker or refused by the master.
    let settled = |stats: &serde_json::Value| {
        per_worker(stats, "live").iter().sum::<u64>() + stats["refused"].as_u64().unwrap_or(0) >= IDLE as u64
    };
    let mut stats = serde_json::Value::Null;
    let all = eventually(Duration::from_secs(5), || {
        stats = s.stats();
        settled(&stats)
    });
    assert!(all, "{IDLE} idle clients neither held nor refused within 5 s: {stats}");
    let (mut refused_seen, mut dropped) = (0, Vec::new());
    for conn in &mut idle {
        match seen(conn) {
            Seen::Nothing => {}
            Seen::Refused => refused_seen += 1,
            Seen::Dropped(what) => dropped.push(what),
        }
    }
    assert!(dropped.is_empty(), "idle clients closed without a 503: {dropped:?}; {stats}");
    assert!(refused_seen > 0, "every idle client held, over the limit: {stats}");

    // A new client is refused at once, as in `rr`.
    let mut conn = s.connect();
    let resp = conn.try_send(GET).and_then(|()| conn.try_read());
    let resp = resp.unwrap_or_else(|e| panic!("a new client got no answer ({e}); log:\n{}", s.log().join("\n")));
    check_error(&resp, 503);
    conn.expect_closed();
    let stats = s.stats();
    assert_eq!(stats["refused"].as_u64(), Some(refused_seen + 1), "{stats}");

    // Room again: once the idle clients go, a new one is served.
    drop(idle);
    assert!(
        eventually(Duration::from_secs(5), || answered(s.addr())),
        "no request answered within 5 s after the idle clients closed; log:\n{}",
        s.log().join("\n")
    );
}

/// Clients the master-restart test sends while its only worker is stopped:
/// more than the master's 64 descriptors hold.
const WAITING_CLIENTS: usize = 100;

/// A master at its open-file limit, holding connections no worker can take
/// (its only worker stopped, then killed), still answers on its control
/// socket and its metrics listener, and starts the worker's replacement,
/// which answers the clients. Before, the restart needed descriptors (the
/// worker's channel, the duplicates it inherits) that the held connections
/// had taken: `cannot restart worker 1: Too many open files` at every try,
/// and the clients waited for ever; nor could `ctl status` or a scrape get
/// in. The master now keeps a few descriptors in reserve, which no accept
/// can take: for starting processes, and a few to lend to such clients.
#[test]
fn a_master_at_its_fd_limit_still_restarts_a_worker_and_answers_its_operator() {
    let path = util::control::control_path("fd-limits", "master-at-limit");
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path").to_string();
    let args = ["--mode", "rr", "--workers", "1", "--no-pin", "--control", &control, "--metrics", "127.0.0.1:0"];
    let s = Server::start_under(&["prlimit", "--nofile=64:64"], &args);
    let metrics = util::ops::metrics_addr(&s);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let first = util::stats::num(&util::stats::expect_worker(&ready, 1), "pid") as u32;
    let _cont = util::procs::stop(first);

    // Each sends a request that closes its connection once answered, so
    // that the new worker's descriptors come back as it answers.
    let mut clients = Vec::with_capacity(WAITING_CLIENTS);
    for i in 0..WAITING_CLIENTS {
        let stream = TcpStream::connect_timeout(&s.addr(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("client {i} of {WAITING_CLIENTS}: {e}"));
        let mut conn = Conn { r: std::io::BufReader::new(stream) };
        conn.try_send(GET_CLOSE).unwrap_or_else(|e| panic!("client {i}: {e}"));
        clients.push(conn);
    }
    let at_limit = "the master is at its open-file limit";
    let (from, _) = s.wait_for_log_from(0, |l| l.contains(at_limit), Duration::from_secs(10));
    // Still at the limit (nothing the master holds can go): each of these
    // comes in on a spare descriptor, given back as it closes, and what the
    // master reads from `/proc` for it (each worker's memory and CPU, its
    // own descriptors) still reads.
    for _ in 0..3 {
        let status = util::control::status(&path);
        let worker = util::stats::expect_worker(&status, 1);
        assert_eq!(util::stats::num(&worker, "pid"), u64::from(first), "{status}");
        assert!(worker["rss_bytes"].as_u64().is_some_and(|b| b > 0), "the worker's memory at the limit: {status}");
        let page = util::ops::scrape(metrics);
        assert!(page.contains("ringmaster_worker_requests_total"));
        let read = |name: &str| page.lines().any(|l| l.starts_with(name));
        assert!(read("process_open_fds ") && read("ringmaster_worker_resident_memory_bytes{"), "at the limit:\n{page}");
    }

    util::procs::kill(first, libc::SIGKILL);
    let restarted = |l: &str| l.starts_with("worker 1 restarted (pid ");
    let back = s.try_wait_for_log_from(from, restarted, Duration::from_secs(30)).is_some();
    assert!(back, "worker 1 not restarted with its master at the fd limit; log:\n{}", s.log().join("\n"));
    let mut refused = 0;
    for (i, conn) in clients.iter_mut().enumerate() {
        conn.stream().set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        let answer = conn.try_read().unwrap_or_else(|e| panic!("client {i} of {WAITING_CLIENTS}: {e}"));
        // A connection the new worker had no room for at that moment may
        // be refused (every worker full: `503`); none is left waiting.
        match answer.status {
            200 => {}
            503 => refused += 1,
            status => panic!("client {i}: status {status}"),
        }
    }
    assert!(refused < WAITING_CLIENTS, "every client was refused");
}

/// `reuseport` workers for the upgrade at the open-file limit: more slot
/// listeners to hand down than the reserve holds descriptors.
const MANY_WORKERS: usize = 20;

/// An upgrade of a `reuseport` master with more slots than its reserve has
/// descriptors, started while the master is at its open-file limit (its
/// soft limit cut, as it runs, to two numbers above what it holds: one for
/// `ctl upgrade`'s connection, lent or not), succeeds: the new master takes
/// every slot listener over and the old one drains and exits 0. Before, the
/// launch duplicated each socket it hands down (one per slot, plus the main
/// listener, the control socket and the readiness channel), more than the
/// reserve's 16 descriptors give back, and the upgrade failed with `Too many
/// open files`; nor would a bigger reserve do on its own, since those
/// duplicates had to be numbered above all the handed ones.
#[test]
fn a_reuseport_upgrade_with_more_slots_than_the_reserve_succeeds_at_the_fd_limit() {
    let dir = util::upgrade::TempDir::new("fd-limits-upgrade");
    let binary = dir.install();
    let control = dir.join("control.sock");
    let workers = MANY_WORKERS.to_string();
    let args = ["--mode", "reuseport", "--steer", "hash", "--workers", &workers, "--no-pin"];
    let mut old =
        Server::start_binary(&binary, &[&args[..], &["--control", control.to_str().expect("UTF-8")]].concat());
    let before = util::upgrade::worker_pids(&util::upgrade::status_when(&control, MANY_WORKERS, |_| true));
    let limit = util::procs::fd_limit_leaving(old.pid(), 2);
    util::procs::set_soft_fd_limit(old.pid(), limit);

    let (code, out, err) = util::control::ctl(&control, &["upgrade"]);
    assert_eq!(code, 0, "ctl upgrade at the fd limit ({limit}): {out} {err}; log:\n{}", old.log().join("\n"));
    assert!(out.starts_with("ok upgraded: pid "), "{out}");
    let status = old.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "the old master drains and exits 0; log:\n{}", old.log().join("\n"));
    let after = util::upgrade::status_when(&control, MANY_WORKERS, |w| {
        w["pid"].as_u64().is_some_and(|p| !before.contains(&(p as u32)))
    });
    assert!(answered(old.addr()), "the new master's workers answer");
    let (code, out, _) = util::control::ctl(&control, &["stop"]);
    assert_eq!((code, out.as_str()), (0, "ok stopping"));
    let left = util::upgrade::wait_gone(&util::upgrade::worker_pids(&after), Duration::from_secs(15));
    assert!(left.is_empty(), "still running after the new master was stopped: {left:?}");
    assert!(eventually(Duration::from_secs(5), || dir.running().is_empty()), "left: {:?}", dir.running());
}

/// Descriptors the master keeps in reserve (`fd_reserve::RESERVED_FDS`).
const RESERVED_FDS: usize = 16;

/// Numbers the first try to restart a worker gets (with its old channel's,
/// which its death frees), the master's limit cut: too few for a start
/// (`fd_reserve.rs` counts up to nine; seven do in `rr`), so that the test
/// gives one more after each failed try and the restart that succeeds has
/// had exactly what a start needs.
const TOO_FEW_FOR_A_START: usize = 3;

/// Clients that arrive while the reserve is short: more than the numbers
/// that come back then.
const ARRIVING: usize = 24;

/// What the master's reserve holds: copies of its stats block's descriptor,
/// by number. The block's own descriptor is the lowest of them (it was
/// opened before any copy, and no number below it is ever let go).
fn reserve_fds(master: u32) -> Vec<i32> {
    let stats_block = |n: &i32| {
        std::fs::read_link(format!("/proc/{master}/fd/{n}"))
            .is_ok_and(|target| target.to_string_lossy().starts_with("/memfd:ringmaster-stats"))
    };
    util::procs::fd_numbers(master).into_iter().filter(stats_block).skip(1).collect()
}

/// The open-file limit under which the master has exactly `numbers` for a
/// start: free numbers below it and its reserve's (a start lets the reserve
/// go first).
fn limit_giving_a_start(master: u32, numbers: usize) -> u64 {
    let held = util::procs::fd_numbers(master);
    let reserve = reserve_fds(master);
    let mut given = 0;
    let mut limit = 0;
    while given < numbers {
        if !held.contains(&limit) || reserve.contains(&limit) {
            given += 1;
        }
        limit += 1;
    }
    limit as u64
}

/// Free numbers below `limit` in process `pid`.
fn free_below(pid: u32, limit: u64) -> usize {
    let held = util::procs::fd_numbers(pid);
    limit as usize - held.iter().filter(|&&n| (n as u64) < limit).count()
}

/// The pid in `worker 1 restarted (pid 1234, ...)`.
fn restarted_pid(message: &str) -> Option<u32> {
    let rest = message.split_once("(pid ")?.1;
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// The gate beside the reserve: while the reserve lacks what a start needs,
/// the master accepts no connection, so that the numbers that come back go
/// to the reserve and not to clients that arrive meanwhile. Here a worker's
/// restart, the master's limit cut, gets exactly what a start needs (the
/// test gives one number more after each try that fails) and leaves the
/// reserve one short of another start. With that worker stopped and the
/// master stopped between two turns of its loop, the limit is raised by
/// exactly what the reserve lacks and clients arrive; then the master runs
/// on. With the gate, its accept was cancelled as the reserve went short
/// (`keep_fd_reserve`): the next turn's refill takes every number, and a
/// new worker (SIGTTIN) starts at the limit. Without it, the accept armed
/// before takes the numbers for the clients (held for the stopped worker),
/// the reserve stays short and the start fails for good (`cannot start
/// worker 2: Too many open files`). Once the operator gives the master its
/// limit back, every client is answered.
///
/// What it cannot show, and why it runs on epoll only:
/// - `arm_accept`'s own check (`reserve_short`) alone: with the cancel at
///   the end of every turn, an accept that a tick arms while the reserve is
///   short is cancelled in the same turn, after the refill (epoll drops it
///   before it runs; io_uring's first accepts come after the refill too).
/// - The master's own closes racing its accepts: each turn ends with the
///   refill, after the turn's closes (on epoll they close at once), before
///   any accept of the next turn. On io_uring a close the ring makes in the
///   wait that ends a turn can reach an armed accept, but the numbers a
///   close frees lie above the reserve's (which always takes the lowest),
///   so the cut that leaves the reserve short leaves them out of reach too.
///   Hence the limit raised while the master is stopped.
/// - Any of this on io_uring, where without the gate the test passes, the
///   accept finding no number left (`holds 0 connections`): continued, the
///   master comes back from its wait (`io_uring_enter`) with `EINTR`, it
///   seems before the kernel runs the task work it defers to the master's
///   waits (`DEFER_TASKRUN`), so a turn, and its refill, come before the
///   listener's poll completion.
#[test]
fn a_master_whose_reserve_is_short_gives_what_comes_back_to_the_reserve_not_to_new_clients() {
    let args = ["--mode", "rr", "--workers", "1", "--no-pin", "--watchdog", "0", "--backend", "epoll"];
    let s = Server::start(&args);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let first = util::stats::num(&util::stats::expect_worker(&ready, 1), "pid") as u32;
    let master = s.pid();
    assert_eq!(reserve_fds(master).len(), RESERVED_FDS, "the reserve, full at the start");

    // The restart gets too few numbers, then one more per failed try.
    let original = util::procs::set_soft_fd_limit(master, limit_giving_a_start(master, TOO_FEW_FOR_A_START));
    let mut from = s.log_len();
    util::procs::kill(first, libc::SIGKILL);
    let mut failed_with = Vec::new();
    let second = loop {
        let tried = |l: &str| l.starts_with("cannot restart worker 1: ") || l.starts_with("worker 1 restarted (pid ");
        let (at, line) = s.wait_for_log_from(from, tried, Duration::from_secs(30));
        if line.starts_with("worker 1 restarted") {
            break restarted_pid(&line).unwrap_or_else(|| panic!("no pid in {line:?}"));
        }
        // What the try had, all back in the reserve.
        failed_with.push(reserve_fds(master).len());
        util::procs::set_soft_fd_limit(master, util::procs::fd_limit_leaving(master, 1));
        from = at + 1;
    };
    // The start logs before the reserve takes its numbers back; the stats
    // line comes in a later turn.
    let restarted = s.wait_workers_ready(1, START_TIMEOUT);
    assert_eq!(util::stats::num(&util::stats::expect_worker(&restarted, 1), "pid"), u64::from(second));
    let short = reserve_fds(master).len();
    let most_failed = failed_with.iter().copied().max().unwrap_or(0);
    assert!(
        short <= most_failed,
        "the reserve ({short}) should hold no more than a start that failed ({failed_with:?}); log:\n{}",
        s.log().join("\n")
    );
    // Stopped, it keeps what is handed to it: the master holds its copies.
    let (second_stopped, _) = util::procs::stop_between_turns(second);
    // The stop sent the master a SIGCHLD: a turn (and a refill) of its own,
    // over once the master has answered a signal sent after it.
    s.stats();

    // What the reserve lacks comes back while clients wait.
    let (master_stopped, _) = util::procs::stop_between_turns(master);
    let limit = util::procs::fd_limit_leaving(master, RESERVED_FDS - short);
    util::procs::set_soft_fd_limit(master, limit);
    let mut clients = Vec::with_capacity(ARRIVING);
    for i in 0..ARRIVING {
        let stream = TcpStream::connect_timeout(&s.addr(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("client {i} of {ARRIVING}: {e}"));
        let mut conn = Conn { r: std::io::BufReader::new(stream) };
        conn.try_send(GET_CLOSE).unwrap_or_else(|e| panic!("client {i}: {e}"));
        clients.push(conn);
    }
    drop(master_stopped);
    assert!(
        eventually(Duration::from_secs(5), || free_below(master, limit) == 0),
        "the master took none of the {} numbers it got back; log:\n{}",
        RESERVED_FDS - short,
        s.log().join("\n")
    );
    let refilled = reserve_fds(master).len();

    // A start at the limit: the reserve's.
    let from = s.log_len();
    s.signal(libc::SIGTTIN);
    let tried = |l: &str| l.starts_with("cannot start worker 2: ") || l.starts_with("worker 2 started (pid ");
    let (_, line) = s.wait_for_log_from(from, tried, Duration::from_secs(10));
    assert!(
        line.starts_with("worker 2 started"),
        "a new worker could not start at the fd limit ({line}): its reserve got {} of the {} numbers it \
         lacked, the clients that arrived took the rest; log:\n{}",
        refilled.saturating_sub(short),
        RESERVED_FDS - short,
        s.log().join("\n")
    );
    let third = restarted_pid(&line).unwrap_or_else(|| panic!("no pid in {line:?}"));

    // The limit given back (to the workers too, which started under the
    // cut one), every client is answered.
    util::procs::set_soft_fd_limit(master, original);
    for pid in [second, third] {
        util::procs::set_soft_fd_limit(pid, original);
    }
    drop(second_stopped);
    // Every client is answered. Worker 1 restarted under the cut limit, so
    // it holds only what that limit lets it (its `capacity`, 7 here); when
    // the master finds it full while it is stopped and worker 2 not yet
    // started, the clients past that get `503`, which the master counts as
    // refused (seen in 1 of 6 runs before and 3 of 6 after 2026-12-06's
    // changes, which did not touch this path): refused, not lost.
    let mut refused = 0;
    for (i, conn) in clients.iter_mut().enumerate() {
        let timeout = conn.stream().set_read_timeout(Some(Duration::from_secs(10)));
        timeout.unwrap_or_else(|e| panic!("client {i}: a read timeout: {e}"));
        let answer = conn.try_read().unwrap_or_else(|e| panic!("client {i} of {ARRIVING}: {e}"));
        match answer.status {
            200 => {}
            503 => refused += 1,
            status => panic!("client {i}: {status}"),
        }
    }
    let stats = s.stats();
    assert_eq!(stats["refused"].as_u64(), Some(refused), "each 503 counted as refused: {stats}");
}

/// How long the master's own line may take after the worker's in
/// [`a_workers_fd_limit_line_does_not_hide_the_masters_own`]: its accept
/// fails as the client connects, and the line comes in that turn; half the
/// 10 s rate limit tells that from a line held back by another kind's timer.
const MASTERS_LINE_WITHIN: Duration = Duration::from_secs(5);

/// A worker at its open-file limit, then, a moment later, the master at its
/// own: both are said, each in its own line. Before, one rate limit of 10 s
/// covered every fd-limit line, so the worker's hid the master's (accepting
/// pauses) for up to 10 s, and an operator missed that the master itself
/// was at its limit.
#[test]
fn a_workers_fd_limit_line_does_not_hide_the_masters_own() {
    let s = Server::start(&["--mode", "rr", "--workers", "1", "--no-pin"]);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let worker = util::stats::num(&util::stats::expect_worker(&ready, 1), "pid") as u32;
    let master = s.pid();
    let master_fds = open_fds(master);

    // The worker: no number free, so the connection handed to it is dropped
    // from the batch (`MSG_CTRUNC`), and it says so.
    let worker_limit = util::procs::fd_limit_leaving(worker, 0);
    util::procs::set_soft_fd_limit(worker, worker_limit);
    let mut first = Conn::connect(s.addr());
    first.send(GET_CLOSE);
    let at_worker = |l: &str| l.starts_with(&format!("worker 1 (pid {worker}) is at its open-file limit"));
    let (from, line) = s.wait_for_log_from(0, at_worker, Duration::from_secs(10));
    // The worker's own limit, not the master's.
    assert!(line.contains(&format!("(RLIMIT_NOFILE {worker_limit})")), "{line}");
    let worker_said = std::time::Instant::now();
    // Its connection settled (refused, as no worker has room), the master
    // holds what it held before: no close of its own frees a number later.
    first.stream().set_read_timeout(Some(IO_TIMEOUT)).expect("a read timeout");
    let mut rest = Vec::new();
    let _ = first.r.read_to_end(&mut rest);
    assert!(
        eventually(Duration::from_secs(5), || open_fds(master) <= master_fds),
        "the master holds {} fds, {master_fds} before the first client",
        open_fds(master)
    );

    // The master: no number free beyond its reserve; a new client's accept fails.
    util::procs::set_soft_fd_limit(master, util::procs::fd_limit_leaving(master, 0));
    let _second = TcpStream::connect_timeout(&s.addr(), IO_TIMEOUT).expect("the second client");
    let at_master = |l: &str| l.starts_with("the master is at its open-file limit") && l.contains("accepting pauses");
    let said = s.try_wait_for_log_from(from + 1, at_master, MASTERS_LINE_WITHIN);
    assert!(
        said.is_some(),
        "the master's own fd-limit line did not come within {MASTERS_LINE_WITHIN:?} ({:?} after the worker's); \
         log:\n{}",
        worker_said.elapsed(),
        s.log().join("\n")
    );
}
