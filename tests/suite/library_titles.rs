//! A program of your own built on the library goes by its own name in `ps`,
//! `top` and `pgrep`, as nginx's processes go by `nginx` and a Node
//! cluster's by `node`: its master is titled `NAME: master`, its workers
//! `NAME: worker N`, and every one of its threads is named `NAME`. Until
//! 2026-12-07 they were `ringmaster: master`, `ringmaster: worker N` and
//! `ringmaster`, `rm-worker-N`: `ps -C hello_cluster` found none of them.
//! Its log lines carry the same name, `NAME[PID]:` (until 2026-12-08
//! `ringmaster[PID]:`, a log shared with the binary's telling them apart by
//! pid alone).

use crate::library_examples::example;
use crate::util;
use crate::util::operator;

use std::process::Command;
use std::time::Duration;

use operator::*;
use util::seccomp::block_io_uring;
use util::*;

/// How long the master may take to see its worker exit at start.
const EXITS_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_library_program_titles_its_processes_with_its_own_name() {
    let mut cmd = Command::new(example("hello_cluster"));
    cmd.env("PORT", "0");
    let s = Server::start_without_flags(cmd);
    let stats = stats_when_ready(&s);

    assert_eq!(cmdline(s.pid()), ["hello_cluster: master"], "the master's /proc/PID/cmdline");
    assert_eq!(comm(s.pid()), "hello_cluster", "the master's thread name");
    let workers = worker_pids_and_cpus(&stats);
    assert!(!workers.is_empty(), "{stats}");
    for (k, (pid, _)) in workers.iter().enumerate() {
        let id = k + 1;
        let line = cmdline(*pid);
        assert_eq!(line[0], format!("hello_cluster: worker {id}"), "worker {id} (pid {pid}): {line:?}");
        assert_eq!(comm(*pid), "hello_cluster", "worker {id}'s thread name");
    }
    assert_eq!(s.connect().request(GET).body, b"hello world\n");
}

#[test]
fn a_library_programs_log_lines_carry_its_own_name() {
    let mut cmd = Command::new(example("hello_cluster"));
    // The worker says a line of its own as it exits at start (then is restarted).
    cmd.env("PORT", "0").env("WORKERS", "1").env("RINGMASTER_FAULT", "exit-at-start");
    if test_backend().as_deref() == Some("epoll") {
        // The example chooses `auto`: epoll is had as where io_uring is blocked.
        block_io_uring(&mut cmd, libc::EPERM);
    }
    let s = Server::start_without_flags(cmd);
    let exit = s.wait_for_log(|l| l.starts_with("worker 1 (pid ") && l.ends_with(") exited with code 3"), EXITS_WITHIN);
    let worker: u32 = exit["worker 1 (pid ".len()..]
        .split(')')
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {exit:?}"));

    // The worker wrote its line before it exited, so before the master saw it exit.
    let raw = s.raw_log();
    let lines: Vec<LogLine<'_>> =
        raw.iter().map(|l| parse_log_line(l).unwrap_or_else(|| panic!("not a log line: {l:?}"))).collect();
    for (line, raw) in lines.iter().zip(&raw) {
        assert_eq!(line.program, "hello_cluster", "the program's name, not ringmaster's: {raw:?}");
    }
    let master = s.pid();
    assert!(lines.iter().any(|l| l.pid == master && l.message.starts_with("listening on ")), "{raw:#?}");
    let own = "worker 1: RINGMASTER_FAULT=exit-at-start: exiting";
    assert!(lines.iter().any(|l| l.pid == worker && l.message == own), "the worker's own line: {raw:#?}");
}
