//! Every libc call the worker makes outside the ring, behind small safe
//! wrappers: raw fds become `OwnedFd` at once, `-1` becomes an `io::Error`.

pub mod epoll;
pub mod socket;
pub mod timerfd;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Turns a libc call's `-1` into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($call:expr) => {{
        let result = $call;
        if result == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(result)
        }
    }};
}
pub(crate) use syscall;

/// `membarrier(2)`'s command that waits for an RCU grace period (libc
/// names it for Android only).
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Waits until every packet the kernel was processing on any CPU when it
/// was called has been processed (an RCU grace period: `membarrier(2)`'s
/// `MEMBARRIER_CMD_GLOBAL`; a few ms, some tens on a busy machine). Fails
/// under `nohz_full` (`EINVAL`) or where seccomp forbids the call.
pub fn wait_for_packets_in_flight() -> io::Result<()> {
    // SAFETY: membarrier with a command and zero flags takes no pointers.
    syscall!(unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) }).map(drop)
}

/// Nanoseconds on the monotonic clock (a vDSO read, no syscall): the clock
/// BPF programs read with `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The running kernel's major and minor version (`uname`).
pub fn kernel_release() -> Option<(u32, u32)> {
    // SAFETY: `utsname` is plain bytes; an all-zero value is valid.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a valid, writable utsname.
    syscall!(unsafe { libc::uname(&mut name) }).ok()?;
    // SAFETY: uname wrote a NUL-terminated string into `release`.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) }.to_str().ok()?;
    parse_release(release)
}

/// `"6.18.0-1-cloud-amd64"` → `(6, 18)`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Milliseconds on the coarse monotonic clock (a vDSO read, no syscall).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC_COARSE always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Takes ownership of an fd the kernel just created for us (an accept result).
///
/// # Safety
/// `fd` must be a new descriptor that nothing else owns or will close.
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Makes writes to a closed socket fail with `EPIPE` instead of killing the process.
pub fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `eventfd`: a counter other threads can make readable.
#[cfg(test)]
pub fn event_fd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd with valid flags returns a new fd or -1.
    let raw = syscall!(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The errno says the process or the system is out of file descriptors.
pub fn out_of_fds(errno: i32) -> bool {
    matches!(errno, libc::EMFILE | libc::ENFILE)
}

/// The errno says an accept failed for want of descriptors or memory:
/// retrying at once would only spin.
pub fn out_of_resources(errno: i32) -> bool {
    out_of_fds(errno) || matches!(errno, libc::ENOMEM | libc::ENOBUFS)
}

/// The soft `RLIMIT_NOFILE`: how many descriptors this process may hold.
pub fn fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit.
    syscall!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok(limit.rlim_cur)
}

/// The soft `RLIMIT_AS` (`ulimit -v`), in bytes; `None` when unlimited.
pub fn address_space_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_AS)
}

/// The soft `RLIMIT_MEMLOCK` (`ulimit -l`), in bytes; `None` when unlimited.
pub fn locked_memory_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_MEMLOCK)
}

/// The soft limit on `resource`; `None` when unlimited.
fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit.
    syscall!(unsafe { libc::getrlimit(resource, &mut limit) }).ok()?;
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// `CAP_IPC_LOCK` (`linux/capability.h`).
const CAP_IPC_LOCK: u32 = 14;

/// Whether this process holds `CAP_IPC_LOCK` in the initial user namespace,
/// which exempts its memory from `RLIMIT_MEMLOCK`; in any other namespace
/// the capability does not (the kernel asks `ns_capable(&init_user_ns)`).
pub fn exempt_from_locked_memory_limit() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status.lines().find_map(|line| line.strip_prefix("CapEff:"));
    let effective = effective.and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok()).unwrap_or(0);
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let initial_namespace = uid_map.split_whitespace().eq(["0", "0", "4294967295"]);
    effective & (1 << CAP_IPC_LOCK) != 0 && initial_namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("6.18.0-1-cloud-amd64"), Some((6, 18)));
        assert_eq!(parse_release("6.16"), Some((6, 16)));
        assert_eq!(parse_release("5.4.0-rc2"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
    }
}
