//! The master's I/O on io_uring: every op is one submission on one ring,
//! and [`Reactor::wait`] is the loop turn's single `submit_and_wait`, so the
//! sends and receives of a whole batch of completions go to the kernel
//! together. Fire-and-forget ops (cancel, close) post nothing unless they fail,
//! and those failures are not reported.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use ringmaster_engine::uring;

use super::{Completion, Lent, LentIo, Reactor, Token};

/// Submission queue entries: a turn's ops; more are submitted early.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: a burst of accepts and acks fits.
pub const CQ_ENTRIES: u32 = 8192;

/// The master's ring.
pub struct UringReactor {
    ring: IoUring,
    /// The timeout's duration; the kernel reads it when the op is submitted.
    tick: Box<Timespec>,
    /// Tokens of the multishot accepts in flight: their results are new fds.
    accepts: Vec<Token>,
}

impl std::fmt::Debug for UringReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringReactor").finish_non_exhaustive()
    }
}

impl UringReactor {
    /// A ring for the master.
    pub fn new() -> io::Result<UringReactor> {
        let ring = IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES)?;
        Ok(UringReactor { ring, tick: Box::new(Timespec::new()), accepts: Vec::with_capacity(2) })
    }

    /// Queues `entry` tagged with `token`.
    ///
    /// # Safety
    /// As for [`uring::push`]: what the entry points to outlives the op.
    unsafe fn push(&mut self, entry: squeue::Entry, token: Token) -> io::Result<()> {
        // SAFETY: guaranteed by the caller.
        unsafe { uring::push(&mut self.ring, &entry.user_data(token)) }
    }

    fn push_ignored(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: cancel and close entries point at no memory.
        unsafe { uring::push_ignored(&mut self.ring, entry) }
    }
}

impl Reactor for UringReactor {
    fn poll_readable(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let poll = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32).multi(true).build();
        // SAFETY: a poll points at no memory.
        unsafe { self.push(poll, token) }
    }

    fn accept(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        let accept = opcode::AcceptMulti::new(Fd(listener)).flags(libc::SOCK_CLOEXEC).build();
        self.accepts.push(token);
        // SAFETY: an accept without an address buffer points at no memory.
        unsafe { self.push(accept, token) }
    }

    fn start(&mut self, lent: Lent, token: Token) -> io::Result<()> {
        let fd = Fd(lent.fd);
        let entry = match lent.io {
            LentIo::Send { buf, len } => opcode::Send::new(fd, buf, clamp(len)).flags(libc::MSG_NOSIGNAL).build(),
            LentIo::Recv { buf, len } => opcode::Recv::new(fd, buf, clamp(len)).build(),
            LentIo::SendMsg { header } => opcode::SendMsg::new(fd, header).flags(libc::MSG_NOSIGNAL as u32).build(),
        };
        // SAFETY: the memory's owner promised, making the `Lent`, to keep it
        // until the completion.
        unsafe { self.push(entry, token) }
    }

    fn timeout(&mut self, after: Duration, token: Token) -> io::Result<()> {
        *self.tick = Timespec::from(after);
        let timeout = opcode::Timeout::new(&*self.tick).build();
        // SAFETY: the timespec is boxed in `self` and only rewritten by the
        // next timeout, which comes after this one completed.
        unsafe { self.push(timeout, token) }
    }

    fn cancel(&mut self, token: Token) -> io::Result<()> {
        self.push_ignored(opcode::AsyncCancel::new(token).build())
    }

    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        // The ring closes it: from here the number is the kernel's to reuse.
        self.push_ignored(opcode::Close::new(Fd(fd.into_raw_fd())).build())
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        uring::submit_and_wait(&mut self.ring)?;
        out.clear();
        let room = out.capacity().max(1);
        for cqe in self.ring.completion() {
            let (token, result, more) = (cqe.user_data(), cqe.result(), cqueue::more(cqe.flags()));
            if token == uring::IGNORED {
                continue;
            }
            let mut accepted = None;
            if let Some(at) = self.accepts.iter().position(|&t| t == token) {
                if result >= 0 {
                    // SAFETY: a successful accept's result is a new fd that nothing else owns.
                    accepted = Some(unsafe { OwnedFd::from_raw_fd(result) });
                }
                if !more {
                    self.accepts.swap_remove(at);
                }
            }
            out.push(Completion { token, result, more, accepted });
            if out.len() == room {
                break;
            }
        }
        Ok(())
    }
}

/// Buffers here are far below 4 GiB; a length is clamped rather than wrapped.
fn clamp(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}
