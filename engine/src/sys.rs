//! Small wrappers over libc calls the worker makes outside the ring.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

/// Sends our FIN (`shutdown(SHUT_WR)`), keeping the receive side open.
pub fn half_close(fd: RawFd) {
    // SAFETY: shutdown on an fd the caller owns; failure (the peer already
    // reset) leaves nothing to undo, the close that follows handles it.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}
