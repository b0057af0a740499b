//! Signals as file descriptors: the master and the workers block the signals
//! they handle and read them from a signalfd on their ring, so no handler
//! ever runs in the middle of the loop. A thread of the process that does
//! not block them (one a library user's program started before the cluster)
//! catches them instead, and sends each on to the thread that reads the fd.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// The process and thread that read the signalfd (0: none yet).
static READER_PID: AtomicI32 = AtomicI32::new(0);
static READER_TID: AtomicI32 = AtomicI32::new(0);

/// Blocks `signals` for this thread and returns a non-blocking signalfd for
/// them. The mask is this thread's: a signal sent to the process goes to a
/// thread that does not block it, if there is one, and is lost to the fd
/// (SIGTERM, by default, then kills the process at once). So each of them
/// gets a handler too, which runs only in such a thread and sends the
/// signal on to this one (`forward`).
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
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    READER_PID.store(std::process::id() as i32, Ordering::Relaxed);
    // SAFETY: gettid has no preconditions.
    READER_TID.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    let action = SigAction::new(SigHandler::SigAction(forward), SaFlags::SA_RESTART, SigSet::empty());
    for &signal in signals {
        // SAFETY: `forward` makes only async-signal-safe calls and keeps errno.
        unsafe { nix::sys::signal::sigaction(signal, &action) }?;
    }
    Ok(fd)
}

/// The handler of the signals a signalfd reads, run only by a thread that
/// does not block them: sends the signal on to the reading thread, which
/// does, with its sender's pid and uid (as `SI_QUEUE`: the kernel lets no
/// process pass a signal on to another thread as `kill` sent it). With no
/// reader to take it (a child forked from the reader and not yet exec'd,
/// its mask cleared; a reader thread that has ended), the signal acts as it
/// would have without the handler.
extern "C" fn forward(signo: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: errno is this thread's; it is put back before returning.
    let errno = unsafe { *libc::__errno_location() };
    let (pid, tid) = (READER_PID.load(Ordering::Relaxed), READER_TID.load(Ordering::Relaxed));
    // SAFETY: getpid has no preconditions.
    let sent = pid == unsafe { libc::getpid() } && !info.is_null() && {
        // SAFETY: the kernel passed a valid siginfo for this signal; the copy
        // lives across the call, which only reads it.
        unsafe {
            let mut sent = *info;
            sent.si_code = libc::SI_QUEUE;
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, signo, &sent as *const libc::siginfo_t) == 0
        }
    };
    if !sent {
        // SAFETY: SIG_DFL is a valid disposition, and raise sends the signal
        // again to this thread, which does not block it: as if never caught.
        unsafe {
            libc::signal(signo, libc::SIG_DFL);
            libc::raise(signo);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
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

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Waits up to `limit` for `fd` to be readable.
    fn readable_within(fd: &OwnedFd, limit: Duration) -> bool {
        let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, limit.as_millis() as i32) };
        ready == 1
    }

    #[test]
    fn a_signal_sent_to_the_process_reaches_the_fd_whichever_thread_takes_it() {
        // The test binary has many threads, and only the one below blocks the
        // signal: the kernel gives a process-directed signal to a thread that
        // does not, as in a master whose program started a thread of its own
        // before it (a runtime, a logger). SIGWINCH, ignored by default, was
        // dropped there (SIGTERM killed such a master without a drain).
        let (sent, got) = mpsc::channel();
        std::thread::spawn(move || {
            let fd = signal_fd(&[Signal::SIGWINCH]).expect("signalfd");
            nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGWINCH).expect("kill");
            let received = readable_within(&fd, Duration::from_secs(5)).then(|| next_signal(&fd));
            let _ = sent.send(received.map(|r| r.map_err(|e| e.to_string())));
        });
        let received = got.recv().expect("the reading thread");
        let Some(Ok(Some(received))) = received else { panic!("no signal read from the fd: {received:?}") };
        assert_eq!(received.signo, libc::SIGWINCH);
        assert_eq!(received.sender, std::process::id(), "the sender's pid comes through");
    }
}
