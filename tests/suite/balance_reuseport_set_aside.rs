//! `--mode reuseport`: a scaled-away worker's listener, set aside by the
//! master until no process of the worker will accept there, in the orders
//! events may come in around it: the same worker id scaled back up before
//! the master let go of it; a stop before it.

use crate::util;

use std::thread;
use std::time::Duration;

use util::control::{control_path, Control};
use util::hashed::{answers, clients_until_queued, two_hashed_workers};
use util::load::close_request_with;
use util::procs::{kill, stop, stop_and_check_no_process_left};
use util::sockets::socket_inode;
use util::stats::{expect_worker, num};
use util::*;

/// Clients that must each be answered within [`PATIENCE`]: spread by the
/// kernel's hash over every listener of the group, about a third of them
/// would reach a listener nobody accepts on.
const CLIENTS: usize = 30;
const PATIENCE: Duration = Duration::from_secs(3);

/// The delay in `worker 2 restarting in N ms`, if the line is that.
fn worker_2_delay(line: &str) -> Option<u64> {
    line.strip_prefix("worker 2 restarting in ")?.strip_suffix(" ms")?.parse().ok()
}

/// The pid in `worker 2 restarted (pid N, ...`, if the line is that.
fn worker_2_restarted(line: &str) -> Option<u32> {
    line.strip_prefix("worker 2 restarted (pid ")?.split(',').next()?.parse().ok()
}

/// [`CLIENTS`] clients at once, each a request on a fresh connection: what
/// went wrong for those not answered 200 in time.
fn clients_at_once(s: &Server) -> Vec<String> {
    let addr = s.addr();
    let clients: Vec<_> =
        (0..CLIENTS).map(|_| thread::spawn(move || close_request_with(addr, PATIENCE, false))).collect();
    clients
        .into_iter()
        .filter_map(|c| match c.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:?}")),
            Err(_) => Some("the client panicked".to_string()),
        })
        .collect()
}

/// Worker 2 crashed and waits out its restart back-off when `scale 1` and
/// `scale 2` come on one control connection: with no process left, worker
/// 2 is gone at once, its listener set aside for the master's next tick,
/// and the scale-up's new worker is worker 2 again. Until 2026-12-07 it got
/// a new listener while the set-aside one stayed in the group, let go of
/// only once no process of worker 2 held it, never while the new one
/// served: the kernel's hash sent a third of the connections there, and
/// nobody took them.
fn a_worker_scaled_back_up_before_the_let_go_takes_its_listener_back(backend: &str) {
    let path = control_path("set-aside", &format!("again-{backend}"));
    let _ = std::fs::remove_file(&path);
    let s = two_hashed_workers(backend, &path, &[]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let mut victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    // Crashed until its next restart is a second away: the window for the
    // two commands, which nothing else closes sooner.
    let mut from = s.log_len();
    loop {
        kill(victim, libc::SIGKILL);
        let (i, line) = s.wait_for_log_from(from, |l| worker_2_delay(l).is_some(), Duration::from_secs(10));
        if worker_2_delay(&line).is_some_and(|ms| ms >= 1000) {
            from = i;
            break;
        }
        let (i, line) = s.wait_for_log_from(i, |l| worker_2_restarted(l).is_some(), Duration::from_secs(10));
        victim = worker_2_restarted(&line).expect("a restarted line");
        from = i;
    }
    let mut control = Control::connect(&path);
    control.send(b"scale 1\nscale 2\n");
    assert_eq!(control.line(), "ok scaling to 1 worker");
    assert_eq!(control.line(), "ok scaling to 2 workers");
    let (_, line) = s.wait_for_log_from(from, |l| l.starts_with("worker 2 started (pid "), Duration::from_secs(10));
    let started = parse_worker_started(&line).map(|(_, pid)| pid).expect("worker 2's pid");
    s.wait_workers_ready(2, START_TIMEOUT);
    let failures = clients_at_once(&s);
    let now = socket_inode(started, 5);
    assert!(
        failures.is_empty(),
        "{backend}: {} of {CLIENTS} clients not answered within {PATIENCE:?} (worker 2's listener was {listener}, \
         its new process's is {now:?}): {failures:?}",
        failures.len()
    );
    drop(control);
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn reuseport_a_worker_scaled_back_up_before_the_let_go_takes_its_listener_back_epoll() {
    a_worker_scaled_back_up_before_the_let_go_takes_its_listener_back("epoll");
}

#[test]
fn reuseport_a_worker_scaled_back_up_before_the_let_go_takes_its_listener_back_io_uring() {
    a_worker_scaled_back_up_before_the_let_go_takes_its_listener_back("auto");
}

/// A stop that comes while a stopped retiree's listener is set aside, with
/// a `--shutdown-timeout` shorter than the 2 s the master gives a worker
/// that stands still: the stop kills the retiree first, and the master
/// exits. What the kernel's hash queued on that listener is answered
/// (`503`) as the master stops listening, as on every other listener.
/// Until 2026-12-07 the stop's look at the listeners passed the set-aside
/// one by, and the master's exit closed it with clients in its queue: each
/// was reset.
fn a_stop_answers_what_waits_on_a_set_aside_listener(backend: &str) {
    let path = control_path("set-aside", &format!("stop-{backend}"));
    let _ = std::fs::remove_file(&path);
    let mut s = two_hashed_workers(backend, &path, &["--shutdown-timeout", "1"]);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    let stopped = stop(victim);
    let mut control = Control::connect(&path);
    assert_eq!(control.command("scale 1"), "ok scaling to 1 worker");
    // Worker 1 answers the others meanwhile.
    let mut clients = clients_until_queued(&s, listener, 3);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    let answers = answers(&mut clients);
    let status = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    eprintln!("{backend}: clients connected before SIGTERM: {answers:?}");
    assert!(
        answers.iter().all(|a| a == "200" || a == "503"),
        "{backend}: clients connected before SIGTERM: {answers:?}; log:\n{log}"
    );
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{log}");
    drop(stopped);
    drop(control);
    stop_and_check_no_process_left(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn reuseport_a_stop_answers_what_waits_on_a_set_aside_listener_epoll() {
    a_stop_answers_what_waits_on_a_set_aside_listener("epoll");
}

#[test]
fn reuseport_a_stop_answers_what_waits_on_a_set_aside_listener_io_uring() {
    a_stop_answers_what_waits_on_a_set_aside_listener("auto");
}
