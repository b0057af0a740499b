//! The listeners the master's ring accepts on: each watched by a multishot
//! poll, and what waits taken when it is ready by a drain (a multishot
//! accept that stops at the empty queue, Linux 6.10) or else by a burst of
//! `accept4`; a drain's connections reported as the accept's.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::types::Fd;
use io_uring::{opcode, squeue};

use super::UringReactor;
use crate::reactor::sys::{self, Burst};
use crate::reactor::{Completion, Token};

/// The kind of a drain's token (the master's kinds are small), beside the listener's fd.
pub(super) const DRAIN_KIND: u8 = u8::MAX;
/// `IORING_ACCEPT_DONTWAIT` (Linux 6.10): an accept ends at `EAGAIN` instead of waiting.
const ACCEPT_DONTWAIT: u16 = 1 << 1;
/// Where `ioprio`, which holds an accept's own flags, sits in an `io_uring_sqe`.
const SQE_IOPRIO_OFFSET: usize = 2;
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64, "an Entry is the kernel's io_uring_sqe");

/// A listener the reactor accepts on: its token and fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Watch {
    pub(super) token: Token,
    pub(super) listener: RawFd,
}

/// A drain in flight: a multishot accept taking what waits on a listener.
#[derive(Clone, Copy, Debug)]
pub(super) struct Drain {
    pub(super) watch: Watch,
    /// The poll saw connections come while it ran: drain again after it.
    pub(super) again: bool,
    /// The poll ended while it ran: this end is reported after its connections.
    pub(super) end: Option<i32>,
}

impl UringReactor {
    /// Accepts what waits on a ready listener: a drain, or a burst of `accept4`.
    pub(super) fn accept_burst(&mut self, watch: Watch, out: &mut Vec<Completion>) {
        if self.drains_accept {
            self.drain(watch);
            return;
        }
        match sys::accept_burst(watch.listener, watch.token, out) {
            Burst::Drained => {}
            Burst::More => {
                if !self.again.contains(&watch) {
                    self.again.push(watch);
                }
            }
            Burst::Done => {
                // An error ended the accept (its last completion is out): stop the poll.
                self.accepts.retain(|w| *w != watch);
                self.again.retain(|w| *w != watch);
                self.ended_polls.push(watch.token);
                let _ = self.push_ignored(opcode::AsyncCancel::new(watch.token).build());
            }
        }
    }

    /// Queues a drain of `watch`'s listener, or, with one in flight, another after it.
    pub(super) fn drain(&mut self, watch: Watch) {
        if let Some(drain) = self.drains.iter_mut().find(|d| d.watch == watch) {
            drain.again = true;
            return;
        }
        let token = ringmaster_engine::token::pack(DRAIN_KIND, watch.listener as u32, 0);
        // SAFETY: an accept that asks for no peer address points at no memory.
        match unsafe { self.push(drain_entry(watch.listener), token) } {
            Ok(()) => {
                self.drains.push(Drain { watch, again: false, end: None });
                self.drain_queued = true;
            }
            // No room in the ring even after submitting: the next turn tries again.
            Err(_) => self.again.push(watch),
        }
    }

    /// A drain's completion: a connection, owned at once and reported as the
    /// accept's; or its end (the queue is empty, or an error stopped it).
    pub(super) fn take_drain(&mut self, token: Token, result: i32, more: bool, out: &mut Vec<Completion>) {
        let listener = token as u32 as RawFd;
        let at = self.drains.iter().position(|d| d.watch.listener == listener);
        if result >= 0 {
            // SAFETY: a successful accept's result is a new descriptor the
            // kernel installed in this process's table (a plain one: the
            // drain asks for no fixed slot), owned by nothing else.
            let connection = unsafe { OwnedFd::from_raw_fd(result) };
            // Its drain is always on record until its last completion; the
            // accept's own record is the fallback, so no connection is dropped.
            let watch = at.map(|at| self.drains[at].watch);
            let Some(watch) = watch.or_else(|| self.accepts.iter().find(|w| w.listener == listener).copied()) else {
                return;
            };
            let mut completion = Completion::of(watch.token, result, true);
            completion.accepted = Some(connection);
            out.push(completion);
            let Some(at) = at else { return };
            if !more {
                // It stopped with connections maybe waiting (a full completion queue).
                self.drains[at].again = true;
                self.drain_ended(at, out);
            }
            return;
        }
        let Some(at) = at else { return };
        let error = io::Error::from_raw_os_error(-result);
        if result == -libc::EAGAIN || sys::accept_goes_on(&error) {
            if result != -libc::EAGAIN {
                self.drains[at].again = true;
            }
            self.drain_ended(at, out);
            return;
        }
        // An error ends the accept (as a burst's does): stop the poll, unless it ended already.
        let drain = self.drains.swap_remove(at);
        out.push(Completion::of(drain.watch.token, result, false));
        if drain.end.is_none() {
            self.accepts.retain(|w| *w != drain.watch);
            self.again.retain(|w| *w != drain.watch);
            self.ended_polls.push(drain.watch.token);
            let _ = self.push_ignored(opcode::AsyncCancel::new(drain.watch.token).build());
        }
    }

    /// The drain `self.drains[at]` ended without an error of its accept's:
    /// the poll's end it held is reported, or another drain follows if asked.
    fn drain_ended(&mut self, at: usize, out: &mut Vec<Completion>) {
        let drain = self.drains.swap_remove(at);
        if let Some(end) = drain.end {
            out.push(Completion::of(drain.watch.token, end, false));
        } else if drain.again && self.accepts.contains(&drain.watch) {
            self.drain(drain.watch);
        }
    }
}

/// A drain of `listener`: a multishot accept that takes what waits and ends
/// at `EAGAIN` instead of waiting. Its connections are plain descriptors
/// (they go to workers with `SCM_RIGHTS`), close-on-exec.
fn drain_entry(listener: RawFd) -> squeue::Entry {
    let mut entry = opcode::AcceptMulti::new(Fd(listener)).flags(libc::SOCK_CLOEXEC).build();
    // The crate sets no accept flag but MULTISHOT; DONTWAIT goes beside it.
    let ioprio = std::ptr::addr_of_mut!(entry).cast::<u8>().wrapping_add(SQE_IOPRIO_OFFSET).cast::<u16>();
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (asserted above), whose `ioprio` is the u16 at byte 2
    // (<linux/io_uring.h>), so 2-aligned in the 8-aligned entry we own.
    unsafe { *ioprio |= ACCEPT_DONTWAIT };
    entry
}
