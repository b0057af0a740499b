//! Where the ring's connections come from on a listener: single-shot
//! accepts kept outstanding for the room there is (those beyond it
//! cancelled), their completions, and the tick's sweep of a queue they left
//! waiting.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use io_uring::opcode;
use io_uring::types::{CancelBuilder, DestinationSlot, Fd};

use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::driver::Origin;
use crate::sys::socket;
use crate::token::{self, Op};

impl UringWorker<'_> {
    /// Arms accepts for the room there is, up to `accepts_outstanding`, and
    /// cancels those armed beyond it.
    pub(super) fn arm_accepts(&mut self) -> io::Result<()> {
        let Some(listener) = self.core.sources.listener.as_ref().map(|l| l.as_raw_fd()) else { return Ok(()) };
        let free = self.room();
        let room = free.min(self.core.config.accepts_outstanding as usize) as u32;
        self.core.note_room(free);
        self.cancel_surplus_accepts(room)?;
        while !self.core.draining && !self.accepts_starved && self.accepts_cancelling == 0 && self.accepts_armed < room
        {
            let accept = opcode::Accept::new(Fd(listener), std::ptr::null_mut(), std::ptr::null_mut());
            // A direct descriptor is never in the process's table, so never
            // inherited: the kernel refuses SOCK_CLOEXEC with it.
            let accept = if self.accepts_direct {
                accept.file_index(Some(DestinationSlot::auto_target())).build()
            } else {
                accept.flags(libc::SOCK_CLOEXEC).build()
            };
            self.push(accept.user_data(token::encode(Op::Accept, 0, 0)))?;
            self.accepts_armed += 1;
        }
        Ok(())
    }

    /// Cancels armed accepts beyond `room`: a connection handed over
    /// (`reuseport`'s rescue of a full worker's queue, the master counting
    /// this worker's free slots as room) took the slot one was armed for.
    /// Left armed, it would take the next client off the listener's queue
    /// with no slot for it, and that client would wait unanswered for one
    /// of this worker's connections to end or idle a second
    /// ([`UringWorker::adopt`]), where in the queue the master could hand
    /// it to whichever worker has room first. All are cancelled and what
    /// room is left is armed again once they are in: cancels of one accept
    /// each, all sent in one turn, took one between them (the same one).
    /// A cancel comes too late for an accept that completes meanwhile: that
    /// client waits for a slot.
    fn cancel_surplus_accepts(&mut self, room: u32) -> io::Result<()> {
        // The drain cancels them all itself.
        if self.core.draining || self.accepts_cancelling > 0 || self.accepts_armed <= room {
            return Ok(());
        }
        let all_accepts = CancelBuilder::user_data(token::encode(Op::Accept, 0, 0)).all();
        self.push_ignored(opcode::AsyncCancel2::new(all_accepts).build())?;
        self.accepts_cancelling = self.accepts_armed;
        Ok(())
    }

    pub(super) fn on_accept(&mut self, result: i32) -> io::Result<()> {
        self.accepts_armed -= 1;
        if result == -libc::ECANCELED {
            self.accepts_cancelling = self.accepts_cancelling.saturating_sub(1);
        }
        // One the cancel came too late for completed as any accept does.
        self.accepts_cancelling = self.accepts_cancelling.min(self.accepts_armed);
        if result >= 0 {
            self.accepted_since_tick = true;
            let socket = if self.accepts_direct {
                RingSocket::Direct(result as u32)
            } else {
                // SAFETY: a successful accept returns a new fd that nothing else owns.
                RingSocket::Plain(unsafe { crate::sys::own_fd(result) })
            };
            self.adopt(socket, Origin::Accepted)?;
        } else if crate::sys::out_of_resources(-result) || result == -libc::EINVAL {
            // Retrying now would spin: the tick lets accepts go again. EINVAL:
            // the listener no longer listens (the master stopping shut it
            // down just before this worker's drain began).
            if crate::sys::out_of_fds(-result) {
                self.core.hit_fd_limit(self.conns.len());
            }
            self.accepts_starved = true;
        }
        Ok(())
    }

    /// Takes what waits in the listen queue with plain accepts when it has
    /// waited from one tick to the next while the ring's accepts took
    /// nothing. A wake-up meant for the waiters on a shared listener can go
    /// to one that is going away (a process exiting with accepts armed): the
    /// connection would then wait for the next one to wake somebody. A queue
    /// the ring's accepts are taking (a burst) stays theirs: they make direct
    /// descriptors, the sweep plain ones.
    pub(super) fn sweep_listener(&mut self) -> io::Result<()> {
        let accepted = std::mem::take(&mut self.accepted_since_tick);
        let Some(listener) = self.core.sources.listener.as_ref() else { return Ok(()) };
        if self.core.draining {
            return Ok(());
        }
        // A failed look (a signal) only puts the sweep off to the next tick.
        let queue = socket::waiting(listener.as_fd()).unwrap_or(false);
        let stuck = queue && self.queue_at_tick && !accepted;
        self.queue_at_tick = queue;
        if !stuck {
            return Ok(());
        }
        while self.room() > self.accepts_armed as usize {
            let Some(listener) = self.core.sources.listener.as_ref() else { break };
            match socket::accept(listener.as_fd()) {
                Ok(Some(fd)) => {
                    self.adopt(RingSocket::Plain(fd), Origin::Accepted)?;
                }
                Ok(None) => break,
                Err(e) if e.raw_os_error().is_some_and(crate::sys::out_of_resources) => {
                    if e.raw_os_error().is_some_and(crate::sys::out_of_fds) {
                        self.core.hit_fd_limit(self.conns.len());
                    }
                    self.accepts_starved = true;
                    break;
                }
                // The connection died in the queue: try the next one.
                Err(_) => {}
            }
        }
        Ok(())
    }
}
