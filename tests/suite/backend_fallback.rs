//! Issue 9: where io_uring is blocked the way Docker (EPERM) and Podman
//! (ENOSYS) block it — a seccomp filter on io_uring_setup, io_uring_enter and
//! io_uring_register, installed in the child before it execs ringmaster and
//! inherited by its workers — `--backend auto` says why it chose epoll and
//! serves on it, and `--backend uring` is a one-line error and exit 1.

use crate::util;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use util::procs::stop_and_check_no_process_left;
use util::*;

/// `AUDIT_ARCH_*` of this build (`linux/audit.h`): the filter only judges
/// syscalls of the architecture whose numbers it knows.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Offsets in `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k }
}

/// The classic BPF program: another architecture is killed; the three
/// io_uring syscalls fail with `errno`; everything else is allowed.
fn io_uring_blocked(errno: i32) -> [libc::sock_filter; 9] {
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    [
        statement(load, SECCOMP_DATA_ARCH),
        jump_if_equal(AUDIT_ARCH, 1, 0),
        statement(ret, libc::SECCOMP_RET_KILL_PROCESS),
        statement(load, SECCOMP_DATA_NR),
        jump_if_equal(libc::SYS_io_uring_setup as u32, 3, 0),
        jump_if_equal(libc::SYS_io_uring_enter as u32, 2, 0),
        jump_if_equal(libc::SYS_io_uring_register as u32, 1, 0),
        statement(ret, libc::SECCOMP_RET_ALLOW),
        statement(ret, libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)),
    ]
}

/// The binary, to be run under a seccomp filter that blocks io_uring with `errno`.
fn under_seccomp(errno: i32) -> Command {
    let mut filter = io_uring_blocked(errno);
    let mut command = Command::new(BIN);
    // SAFETY: the closure runs in the forked child before exec; it makes only
    // prctl calls (async-signal-safe) on memory moved into it, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mode = libc::SECCOMP_MODE_FILTER as libc::c_ulong;
            if libc::prctl(libc::PR_SET_SECCOMP, mode, &program as *const libc::sock_fprog) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
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
