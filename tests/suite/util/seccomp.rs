//! Seccomp filters, installed in a child before it execs and inherited by
//! everything it starts: one blocks io_uring the way Docker (EPERM) and
//! Podman (ENOSYS) do (`--backend auto`, a library user's default, then
//! serves on epoll); one blocks `bpf(2)` (`reuseport --steer`), one the
//! attach of a steering program to a listener group; one kills a process
//! that changes its umask.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// `ret` with a constant: the filter's verdict.
const RETURN: u32 = libc::BPF_RET | libc::BPF_K;

/// A filter's first statements: a syscall of another architecture kills the
/// process; then the syscall's number is loaded for what follows.
fn this_architecture_only() -> [libc::sock_filter; 4] {
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    [
        statement(load, SECCOMP_DATA_ARCH),
        jump_if_equal(AUDIT_ARCH, 1, 0),
        statement(RETURN, libc::SECCOMP_RET_KILL_PROCESS),
        statement(load, SECCOMP_DATA_NR),
    ]
}

/// The classic BPF program: another architecture is killed; the three
/// io_uring syscalls fail with `errno`; everything else is allowed.
fn io_uring_blocked(errno: i32) -> [libc::sock_filter; 9] {
    let [arch, other_arch, kill, load_nr] = this_architecture_only();
    [
        arch,
        other_arch,
        kill,
        load_nr,
        jump_if_equal(libc::SYS_io_uring_setup as u32, 3, 0),
        jump_if_equal(libc::SYS_io_uring_enter as u32, 2, 0),
        jump_if_equal(libc::SYS_io_uring_register as u32, 1, 0),
        statement(RETURN, libc::SECCOMP_RET_ALLOW),
        statement(RETURN, libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)),
    ]
}

/// Makes `command`'s child (and all it starts) see io_uring fail with `errno`.
pub fn block_io_uring(command: &mut Command, errno: i32) {
    install(command, io_uring_blocked(errno));
}

/// The classic BPF program: another architecture is killed; `bpf` fails
/// with `errno`; everything else is allowed.
fn bpf_blocked(errno: i32) -> [libc::sock_filter; 7] {
    let [arch, other_arch, kill, load_nr] = this_architecture_only();
    [
        arch,
        other_arch,
        kill,
        load_nr,
        jump_if_equal(libc::SYS_bpf as u32, 1, 0),
        statement(RETURN, libc::SECCOMP_RET_ALLOW),
        statement(RETURN, libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)),
    ]
}

/// Makes `command`'s child (and all it starts) see `bpf(2)` fail with
/// `errno`, as Docker's default profile does (`EPERM`).
pub fn block_bpf(command: &mut Command, errno: i32) {
    install(command, bpf_blocked(errno));
}

/// `SO_ATTACH_REUSEPORT_EBPF` (`asm-generic/socket.h`).
const SO_ATTACH_REUSEPORT_EBPF: u32 = 52;
/// Offset in `struct seccomp_data` of the low half of `args[2]` (a
/// little-endian `u64`): `setsockopt`'s option name.
const SECCOMP_DATA_ARG2_LOW: u32 = 16 + 2 * 8;

/// The classic BPF program: another architecture is killed; a
/// `setsockopt` of `SO_ATTACH_REUSEPORT_EBPF` fails with `errno`;
/// everything else is allowed.
fn steering_attach_blocked(errno: i32) -> [libc::sock_filter; 9] {
    let [arch, other_arch, kill, load_nr] = this_architecture_only();
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    [
        arch,
        other_arch,
        kill,
        load_nr,
        jump_if_equal(libc::SYS_setsockopt as u32, 0, 3),
        statement(load, SECCOMP_DATA_ARG2_LOW),
        jump_if_equal(SO_ATTACH_REUSEPORT_EBPF, 0, 1),
        statement(RETURN, libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)),
        statement(RETURN, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Makes `command`'s child (and all it starts) fail to attach a steering
/// program to a `SO_REUSEPORT` group with `errno`, while `bpf(2)` works.
pub fn block_steering_attach(command: &mut Command, errno: i32) {
    install(command, steering_attach_blocked(errno));
}

/// The classic BPF program: another architecture is killed, and so is a
/// process that calls `umask`; everything else is allowed.
fn umask_killed() -> [libc::sock_filter; 7] {
    let [arch, other_arch, kill, load_nr] = this_architecture_only();
    [
        arch,
        other_arch,
        kill,
        load_nr,
        jump_if_equal(libc::SYS_umask as u32, 0, 1),
        statement(RETURN, libc::SECCOMP_RET_KILL_PROCESS),
        statement(RETURN, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Kills `command`'s child (and all it starts) if it ever changes its
/// umask: the mask is the process's, every thread's, so a library's call
/// changes the modes of files a thread of the user's program makes meanwhile.
pub fn kill_on_umask(command: &mut Command) {
    install(command, umask_killed());
}

/// Installs `filter` in `command`'s child before it execs.
fn install<const N: usize>(command: &mut Command, mut filter: [libc::sock_filter; N]) {
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
}
