//! A periodic timer as a file descriptor, for the epoll driver's tick.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::syscall;

/// A non-blocking timerfd on the monotonic clock that fires every period.
#[derive(Debug)]
pub struct Ticker {
    fd: OwnedFd,
}

impl Ticker {
    /// Starts a timer firing every `period`.
    pub fn every(period: Duration) -> io::Result<Ticker> {
        let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
        // SAFETY: timerfd_create with valid arguments returns a new fd or -1.
        let raw = syscall!(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) })?;
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let interval = libc::timespec { tv_sec: period.as_secs() as libc::time_t, tv_nsec: period.subsec_nanos() as _ };
        let spec = libc::itimerspec { it_interval: interval, it_value: interval };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        syscall!(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
        Ok(Ticker { fd })
    }

    /// Consumes the expirations so far (the fd stops being readable).
    pub fn acknowledge(&self) {
        let mut expirations = 0u64;
        // SAFETY: reading 8 bytes into a live u64; EAGAIN (nothing yet) is harmless.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
    }
}

impl AsFd for Ticker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
