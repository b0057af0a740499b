//! Which kernel interface runs the event loops: io_uring where the kernel
//! lets this process use it, epoll where it does not. The master decides once
//! (`--backend auto|uring|epoll`) and its workers inherit the choice.
//!
//! io_uring is blocked in many real places: Docker's default seccomp profile
//! (EPERM), Podman's (ENOSYS), `kernel.io_uring_disabled` (EPERM), SELinux
//! (EACCES), and old kernels lack what the drivers use (EINVAL). The probe
//! tries exactly what the io_uring driver needs — its ring set-up, a
//! registered provided-buffer ring and a multishot receive into it — and
//! says why it failed in words an operator can act on.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, types::Fd};

use crate::bufring::{self, BufRing};
use crate::{refused, sys, uring};

/// The kernel interface a process's event loop runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: one ring, completions in batches.
    Uring,
    /// Edge-triggered epoll and plain syscalls.
    Epoll,
}

impl Backend {
    /// The name used on the command line, in the environment and in the stats line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }

    /// The backend called `name`, if any.
    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "uring" => Some(Backend::Uring),
            "epoll" => Some(Backend::Epoll),
            _ => None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring if the probe passes, else epoll (with one log line saying why).
    Auto,
    /// io_uring or a one-line error.
    Uring,
    /// epoll, without probing.
    Epoll,
}

/// Why this process cannot run the io_uring driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UringUnavailable {
    /// The errno that stopped the probe.
    pub errno: i32,
    /// True when epoll is the right answer (blocked or missing); false when
    /// io_uring is there but failed for a reason the operator should fix
    /// (memory), which falling back would only hide.
    pub blocked: bool,
    /// What failed, why, and how to enable io_uring.
    pub reason: String,
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Resolves the command line's choice; the log line to print when `auto`
/// falls back to epoll comes with it. An error is one line for the user.
pub fn choose_backend(choice: BackendChoice) -> Result<(Backend, Option<String>), String> {
    match choice {
        BackendChoice::Epoll => Ok((Backend::Epoll, None)),
        BackendChoice::Uring => match probe_uring() {
            Ok(()) => Ok((Backend::Uring, None)),
            Err(e) => Err(format!("--backend uring: {e}")),
        },
        BackendChoice::Auto => match probe_uring() {
            Ok(()) => Ok((Backend::Uring, None)),
            Err(e) if e.blocked => Ok((Backend::Epoll, Some(format!("{e}; serving with epoll")))),
            Err(e) => Err(format!("io_uring failed: {e} (or choose --backend epoll)")),
        },
    }
}

/// Submission entries of the probe's ring.
const PROBE_ENTRIES: u32 = 8;

/// Checks that the io_uring driver can run here: the worker's ring set-up, a
/// registered provided-buffer ring (Linux 5.19) and a multishot receive
/// (Linux 6.0) that really delivers a byte.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    let ring_bytes = uring::ring_bytes(PROBE_ENTRIES);
    let mut ring =
        uring::build_ring(PROBE_ENTRIES).map_err(|e| explain_with_ring(&e, "io_uring_setup", Some(ring_bytes)))?;
    let bufs = BufRing::register(&ring.submitter(), 1, 64).map_err(|e| explain(&e, "registering receive buffers"))?;
    let (reader, writer) = socket_pair().map_err(|e| explain(&e, "socketpair"))?;
    let recv = opcode::RecvMulti::new(Fd(reader.as_raw_fd()), bufring::GROUP).build().user_data(1);
    // SAFETY: the entry points at no memory of ours; the buffers it reads into
    // are registered in `bufs`, which outlives the ring (dropped after it below).
    unsafe { uring::push(&mut ring, &recv) }.map_err(|e| explain(&e, "io_uring_enter"))?;
    // SAFETY: writing one byte from a static buffer to a socket we own.
    if unsafe { libc::write(writer.as_raw_fd(), b"x".as_ptr().cast(), 1) } != 1 {
        return Err(explain(&io::Error::last_os_error(), "socketpair write"));
    }
    ring.submit_and_wait(1).map_err(|e| explain(&e, "io_uring_enter"))?;
    let completion = ring.completion().next().map(|c| (c.result(), c.flags()));
    drop(ring);
    drop(bufs);
    match completion {
        Some((1, flags)) if cqueue::buffer_select(flags).is_some() => Ok(()),
        Some((result, _)) if result < 0 => Err(explain(&io::Error::from_raw_os_error(-result), "multishot receive")),
        other => Err(UringUnavailable {
            errno: 0,
            blocked: true,
            reason: format!(
                "io_uring multishot receive gave {other:?} instead of one byte: kernel too old (6.0+ needed)"
            ),
        }),
    }
}

/// Turns the errno of a failed step into an operator's explanation.
fn explain(error: &io::Error, step: &str) -> UringUnavailable {
    explain_with_ring(error, step, None)
}

/// [`explain`] for a step that maps a ring of `ring_bytes` into this
/// process, which an address-space limit can refuse.
fn explain_with_ring(error: &io::Error, step: &str, ring_bytes: Option<usize>) -> UringUnavailable {
    let errno = error.raw_os_error().unwrap_or(0);
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    let disabled = disabled.as_deref().map(str::trim);
    let (blocked, why) = match errno {
        libc::EPERM if disabled == Some("2") => {
            (true, "kernel.io_uring_disabled=2 turns io_uring off for everyone".to_string())
        }
        libc::EPERM if disabled == Some("1") => {
            (true, "kernel.io_uring_disabled=1 allows io_uring only to the group in kernel.io_uring_group".to_string())
        }
        libc::EPERM => (
            true,
            "blocked by a seccomp profile (Docker's default returns EPERM) or kernel.io_uring_disabled".to_string(),
        ),
        libc::ENOSYS => (
            true,
            "not available: the kernel lacks io_uring or a seccomp profile hides it (Podman's default returns ENOSYS)"
                .to_string(),
        ),
        libc::EACCES => (true, "denied by a security module (SELinux or AppArmor policy)".to_string()),
        libc::EINVAL | libc::EOPNOTSUPP => {
            (true, "the kernel is too old for this driver (Linux 6.0+ needed)".to_string())
        }
        libc::ENOMEM => (false, short_of_memory(ring_bytes)),
        _ => (false, format!("unexpected error: {error}")),
    };
    let name = errno_name(errno);
    let advice = if blocked {
        ": allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp profile, or set kernel.io_uring_disabled=0"
    } else {
        ""
    };
    UringUnavailable { errno, blocked, reason: format!("io_uring blocked at {step} ({name}: {why}){advice}") }
}

/// Which memory the kernel lacked for a step that failed with `ENOMEM`
/// (mapping a ring of `ring_bytes`, if it maps one), and what to raise.
pub(crate) fn short_of_memory(ring_bytes: Option<usize>) -> String {
    if let Some(limit) = ring_bytes.and_then(refused::address_space_lacks) {
        return format!(
            "the address-space limit (RLIMIT_AS, `ulimit -v`, systemd LimitAS=) of {limit} bytes leaves no room \
             for the ring: raise it"
        );
    }
    if let Some(limit) = sys::locked_memory_limit().filter(|_| rings_count_as_locked()) {
        return format!(
            "out of locked memory: RLIMIT_MEMLOCK, which this user's io_uring rings count against, is {limit} \
             bytes: raise it (ulimit -l, systemd LimitMEMLOCK=)"
        );
    }
    match crate::cgroup::memory_limit() {
        Some(limit) => format!(
            "the kernel or the memory cgroup is short of memory ({} is {} bytes)",
            limit.file.display(),
            limit.bytes
        ),
        None => "the kernel or the memory cgroup is short of memory".to_string(),
    }
}

/// The kernels that count io_uring rings against the memory cgroup only:
/// Linux 5.12 moved them there from `RLIMIT_MEMLOCK`; 6.14 made them
/// memory regions, counted against it again (measured on 6.18: `ulimit -l
/// 0` fails `io_uring_setup` with `ENOMEM`).
const RINGS_NOT_LOCKED: std::ops::Range<(u32, u32)> = (5, 12)..(6, 14);

/// Whether this kernel counts the io_uring rings of a process that may not
/// lock memory against its user's `RLIMIT_MEMLOCK`: before 5.12, and from
/// 6.14 on. The count is the user's, over all its processes;
/// each new ring must fit under the limit of the process that makes it.
pub fn kernel_counts_rings_as_locked() -> bool {
    sys::kernel_release().is_none_or(|version| !RINGS_NOT_LOCKED.contains(&version))
}

/// Whether the kernel counts this process's io_uring rings against
/// `RLIMIT_MEMLOCK`: outside [`RINGS_NOT_LOCKED`], unless the process may
/// lock memory (`CAP_IPC_LOCK`).
fn rings_count_as_locked() -> bool {
    kernel_counts_rings_as_locked() && !sys::exempt_from_locked_memory_limit()
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOMEM => "ENOMEM",
        _ => "error",
    }
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both fds are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for backend in [Backend::Uring, Backend::Epoll] {
            assert_eq!(Backend::from_name(backend.name()), Some(backend));
        }
        assert_eq!(Backend::from_name("kqueue"), None);
    }

    #[test]
    fn errors_say_what_to_do() {
        let seccomp = explain(&io::Error::from_raw_os_error(libc::ENOSYS), "io_uring_setup");
        assert!(seccomp.blocked);
        assert!(seccomp.reason.contains("ENOSYS"), "{seccomp}");
        assert!(seccomp.reason.contains("seccomp"), "{seccomp}");
        let memory = explain(&io::Error::from_raw_os_error(libc::ENOMEM), "io_uring_setup");
        assert!(!memory.blocked, "ENOMEM is an error to fix, not a reason to fall back");
        assert!(!memory.reason.contains("RLIMIT_AS"), "a step that maps no ring: {memory}");
        // Locked memory is named only where it can be what lacks.
        let locked = rings_count_as_locked() && sys::locked_memory_limit().is_some();
        assert_eq!(memory.reason.contains("RLIMIT_MEMLOCK"), locked, "{memory}");
        assert_eq!(memory.reason.contains("the kernel or the memory cgroup is short of memory"), !locked, "{memory}");
    }

    #[test]
    fn epoll_needs_no_probe() {
        assert_eq!(choose_backend(BackendChoice::Epoll), Ok((Backend::Epoll, None)));
    }
}
