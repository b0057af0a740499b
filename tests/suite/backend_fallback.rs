//! Issue 9: where io_uring is blocked the way Docker (EPERM) and Podman
//! (ENOSYS) block it — a seccomp filter on io_uring_setup, io_uring_enter and
//! io_uring_register, installed in the child before it execs ringmaster and
//! inherited by its workers — `--backend auto` says why it chose epoll and
//! serves on it, and `--backend uring` is a one-line error and exit 1.

use crate::util;

use std::process::Command;
use std::time::Duration;

use util::procs::stop_and_check_no_process_left;
use util::seccomp::block_io_uring;
use util::*;

/// The binary, to be run under a seccomp filter that blocks io_uring with `errno`.
fn under_seccomp(errno: i32) -> Command {
    let mut command = Command::new(BIN);
    block_io_uring(&mut command, errno);
    command
}

/// `--backend auto` under the filter: the line saying why, the stats line's
/// backend, and HTTP served by the workers in `mode`.
fn auto_serves_with_epoll(errno: i32, name: &str, mode: &str) {
    let s = Server::start_command(
        under_seccomp(errno),
        &["--backend", "auto", "--workers", "2", "--no-pin", "--mode", mode],
    );
    let why = s.wait_for_log(|l| l.contains("serving with epoll"), Duration::from_secs(1));
    assert!(why.contains(name) && why.contains("seccomp"), "the fallback line says why: {why}");
    assert_eq!(s.stats()["backend"], "epoll");
    // The workers run on the backend the master chose, without probing.
    s.wait_workers_ready(2, START_TIMEOUT);
    for _ in 0..20 {
        s.connect().get_ok();
    }
    let mut keepalive = s.connect();
    for _ in 0..20 {
        keepalive.get_ok();
    }
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_serves_with_epoll_when_seccomp_says_eperm_as_docker_does() {
    auto_serves_with_epoll(libc::EPERM, "EPERM", "rr");
}

#[test]
fn shared_serves_with_epoll_when_seccomp_says_enosys_as_podman_does() {
    auto_serves_with_epoll(libc::ENOSYS, "ENOSYS", "shared");
}

#[test]
fn backend_uring_is_a_one_line_error_when_seccomp_blocks_io_uring() {
    for (errno, name) in [(libc::EPERM, "EPERM"), (libc::ENOSYS, "ENOSYS")] {
        let mut command = under_seccomp(errno);
        command.args(["--bind", "127.0.0.1:0", "--workers", "1", "--no-pin", "--backend", "uring"]);
        let output = command.output().expect("run ringmaster");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(err.contains("--backend uring") && err.contains(name) && err.contains("io_uring_setup"), "{err}");
    }
}
