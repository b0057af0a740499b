//! Signals as file descriptors: the master and the workers block the signals
//! they handle and read them from a signalfd on their ring, so no handler
//! ever runs in the middle of the loop.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// Blocks `signals` for this thread and returns a non-blocking signalfd for them.
pub fn signal_fd(signals: &[Signal]) -> io::Result<OwnedFd> {
    let mut set = SigSet::empty();
    for &signal in signals {
        set.add(signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    // SAFETY: `set` is a valid sigset_t; -1 asks for a new signalfd.
    let raw = unsafe { libc::signalfd(-1, set.as_ref(), libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A signal read from a signalfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The signal's number.
    pub signo: i32,
    /// The pid that sent it (0 for the kernel): an old master stopping the
    /// new one it gave up is told apart from an operator's stop.
    pub sender: u32,
}

/// Reads the next pending signal from a non-blocking signalfd; `None` when none is left.
pub fn next_signal(fd: &OwnedFd) -> io::Result<Option<Received>> {
    use std::os::fd::AsRawFd;
    // SAFETY: signalfd_siginfo is a plain C struct; all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading at most `size` bytes into `info`, which is that large.
    let read = unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    if read < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(error),
        };
    }
    if read as usize != size {
        return Ok(None);
    }
    Ok(Some(Received { signo: info.ssi_signo as i32, sender: info.ssi_pid }))
}

/// Puts the signal mask back to empty (for a child about to exec).
pub fn clear_signal_mask() -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// The conventional name of a signal number, for logs.
pub fn signal_name(signo: i32) -> String {
    Signal::try_from(signo).map_or_else(|_| format!("signal {signo}"), |s| s.as_str().to_string())
}
