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
use std::time::Duration;

use util::procs::stop_and_check_no_process_left;
use util::seccomp::{block_bpf, block_steering_attach};
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

/// A steering program that loads but cannot be attached to the listeners'
/// group (a security policy refusing `SO_ATTACH_REUSEPORT_EBPF`): the
/// master serves by the hash, says so once, and says `"steer":"hash"`.
/// Until 2026-12-07 it tried again at every 5 ms refresh and said so each
/// time: about 200 lines a second for as long as it ran.
#[test]
fn a_steering_program_that_cannot_be_attached_is_said_once() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root, to load the program");
        return;
    }
    let mut command = Command::new(BIN);
    block_steering_attach(&mut command, libc::EPERM);
    let s = Server::start_command(command, &["--mode", "reuseport", "--steer", "load", "--workers", "2", "--no-pin"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let cannot = |s: &Server| s.log().iter().filter(|l| l.starts_with("cannot attach the steering program")).count();
    // A second of refreshes (200 of them): the line must not come again.
    let repeated = eventually(Duration::from_secs(1), || cannot(&s) > 1);
    assert!(!repeated, "said {} times: {:?}", cannot(&s), s.log());
    assert_eq!(cannot(&s), 1, "said once: {:?}", s.log());
    assert_eq!(s.stats()["steer"], "hash", "{}", s.stats());
    s.connect().get_ok();
    stop_and_check_no_process_left(s);
}
