//! Supervisor: in `rr`, connections the master accepts while no worker is
//! ready to take them are held (up to `--backlog`; past that they wait in the
//! kernel's queue) and handed out as soon as a worker is ready: none is lost.
//!
//! The window with no ready worker is made by the test, not found by timing:
//! the master is stopped (SIGSTOP), its only worker killed; clients connect
//! (the kernel completes as many handshakes as the listen backlog holds,
//! backlog + 1) and send their request. When the master runs again it finds
//! the connections and the dead worker together; the worker it restarts is
//! at least 100 ms away (the first restart delay), and nothing else can answer.

use crate::util;

use std::time::Duration;
use util::procs::{is_zombie, kill, process_state, stop, stop_and_check_no_process_left};
use util::stats::{num, worker};
use util::*;

#[test]
fn rr_connections_accepted_with_no_worker_ready_are_held_and_answered_once_one_is() {
    const BACKLOG: usize = 4;
    let s = Server::start(&["--mode", "rr", "--workers", "1", "--backlog", &BACKLOG.to_string()]);
    let st = s.wait_workers_ready(1, Duration::from_secs(5));
    let victim = num(&worker(&st, 1).unwrap(), "pid") as u32;

    let master = stop(s.pid());
    assert!(eventually(IO_TIMEOUT, || process_state(s.pid()) == Some('T')), "master not stopped");
    kill(victim, libc::SIGKILL);
    assert!(eventually(IO_TIMEOUT, || is_zombie(victim)), "worker {victim} not dead");
    // The kernel's accept queue holds backlog + 1 connections.
    let mut waiting: Vec<Conn> = (0..=BACKLOG)
        .map(|_| {
            let mut c = s.connect();
            c.send(GET_CLOSE);
            c
        })
        .collect();
    let from = s.log_len();
    drop(master);

    // Every one is answered, and only after the master restarted the worker.
    let mut answered_at = Vec::new();
    for (i, c) in waiting.iter_mut().enumerate() {
        let resp = c.try_read().unwrap_or_else(|e| panic!("connection {i} held while no worker was ready: {e}"));
        check_ok(&resp);
        answered_at.push(unix_ms_now());
    }
    let (i, _) =
        s.wait_for_log_from(from, |l| l == format!("worker 1 (pid {victim}) killed by signal 9 (SIGKILL)"), IO_TIMEOUT);
    let (i, _) = s.wait_for_log_from(i, |l| l == "worker 1 restarting in 100 ms", IO_TIMEOUT);
    let (_, restarted) = s.wait_for_log_from(i, |l| l.starts_with("worker 1 restarted (pid "), IO_TIMEOUT);
    let restarted_ms = s
        .raw_log()
        .iter()
        .filter_map(|l| parse_log_line(l))
        .find(|l| l.message == restarted)
        .map(|l| l.unix_ms)
        .unwrap();
    for (i, &t) in answered_at.iter().enumerate() {
        assert!(t >= restarted_ms, "connection {i} answered at {t}, before the worker was restarted at {restarted_ms}");
    }

    // All were taken by the restarted worker, once each.
    let mut st = serde_json::Value::Null;
    let n = (BACKLOG + 1) as u64;
    let settled = eventually(IO_TIMEOUT, || {
        st = s.stats();
        stats_totals(&st) == (n, n, 0)
    });
    assert!(settled, "stats do not show {n} connections taken and answered: {st}");
    assert_eq!(num(&worker(&st, 1).unwrap(), "restarts"), 1, "{st}");
    stop_and_check_no_process_left(s);
}
