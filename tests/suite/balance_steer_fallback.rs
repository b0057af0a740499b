//! `reuseport --steer`'s fallback when `bpf(2)` is refused to a master that
//! holds the capabilities it needs (root here): a seccomp profile (Docker's
//! default returns `EPERM` for `bpf`, Podman's `ENOSYS`) or a security
//! module. The line that says why names that, not missing capabilities,
//! which root has: until 2026-12-07 `EPERM` always read "loading BPF
//! programs needs CAP_BPF and CAP_NET_ADMIN, or root", to root as well.
//! The default (`--steer` unset) serves by the hash and says so in the
//! stats line.

use crate::util;

use std::process::Command;

use util::procs::stop_and_check_no_process_left;
use util::seccomp::block_bpf;
use util::*;

/// The binary, to be run under a seccomp filter that fails `bpf` with `errno`.
fn under_seccomp(errno: i32) -> Command {
    let mut command = Command::new(BIN);
    block_bpf(&mut command, errno);
    command
}

#[test]
fn bpf_refused_to_root_by_seccomp_is_not_blamed_on_capabilities() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root, so that the capabilities are there");
        return;
    }
    let mut command = under_seccomp(libc::EPERM);
    command.args(["--mode", "reuseport", "--steer", "load", "--bind", "127.0.0.1:0", "--workers", "1"]);
    let output = command.output().expect("run ringmaster");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--steer load: cannot create a REUSEPORT_SOCKARRAY map"), "{stderr}");
    assert!(!stderr.contains("needs CAP_BPF"), "root has the capabilities: {stderr}");
    assert!(stderr.contains("seccomp"), "it names what refuses: {stderr}");

    let s = Server::start_command(under_seccomp(libc::EPERM), &["--mode", "reuseport", "--workers", "1", "--no-pin"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let why: Vec<String> =
        s.log().into_iter().filter(|l| l.starts_with("reuseport: steering by the kernel's hash")).collect();
    assert!(why.len() == 1 && why[0].contains("seccomp"), "one line says why: {why:?}");
    assert_eq!(s.stats()["steer"], "hash", "{}", s.stats());
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}
