//! The master's reserve of descriptors (`fd_reserve.rs`) kept each loop
//! turn, and its spares lent to a control or metrics client that comes
//! while the master is at its open-file limit: its listener's accept failed
//! for want of a descriptor, so one spare is let go and the client accepted
//! on it at once (before the loop turn's refill takes the number back), so
//! that `ctl status` and a scrape answer when they matter most. What a
//! worker's start needs stays in the reserve.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use super::{Master, Op};
use crate::reactor::sys;

impl Master {
    /// Once per loop turn: takes back what the reserve lent or let go, and
    /// stops accepting connections while it lacks what a start needs (the
    /// tick accepts again once it has it).
    pub(super) fn keep_fd_reserve(&mut self) -> io::Result<()> {
        self.fd_reserve.refill(self.stats_fd.as_fd());
        if self.dispatch.accepting && !self.fd_reserve.enough_for_a_start() {
            self.reactor.cancel(Op::Accept.token(0, 0))?;
        }
        Ok(())
    }

    /// A client waiting on `listener`, accepted on a spare descriptor of the
    /// reserve; `None` when no spare may be lent or nobody waits.
    pub(super) fn accept_on_a_spare(&mut self, listener: RawFd) -> Option<OwnedFd> {
        if !self.fd_reserve.lend_one() {
            return None;
        }
        // Nobody waiting (`EAGAIN`) or the limit met again: the refill takes
        // the spare back.
        sys::accept(listener).ok()
    }
}
