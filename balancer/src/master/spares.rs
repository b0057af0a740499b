//! The master's reserve of descriptors (`fd_reserve.rs`) kept each loop
//! turn, and its spares lent to a control or metrics client that comes
//! while the master is at its open-file limit: its listener's accept failed
//! for want of a descriptor, so one spare is let go and the client accepted
//! on it at once (before the loop turn's refill takes the number back), so
//! that `ctl status` and a scrape answer when they matter most. Their
//! pages read `/proc`, which takes a descriptor too: one more spare is let
//! go for that. What a worker's start needs stays in the reserve. At a
//! stop the same numbers answer what waits in a listen queue (`503`), so
//! that the listener's shutdown that follows resets none of it.

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

    /// Makes a stats line or metrics page with one spare let go, so that its
    /// reads of `/proc` (each worker's memory and CPU, the master's own
    /// descriptors), one at a time, find a number at the open-file limit;
    /// the spare is taken back before the page goes out. Without it they
    /// read `null` just when an operator looks at a master at its limit.
    /// `make` is told whether a spare was let go (a count of the master's
    /// descriptors adds it back).
    pub(super) fn with_a_number_for_proc<T>(&mut self, make: impl FnOnce(&Self, bool) -> T) -> T {
        // None lent (only what a start needs is left): the reads may fail,
        // and the page says `null` for them.
        let lent = self.fd_reserve.lend_one();
        let page = make(self, lent);
        if lent {
            self.fd_reserve.refill(self.stats_fd.as_fd());
        }
        page
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

    /// Frees one number for a connection to be accepted and refused while
    /// the master is at its open-file limit (a stop answering its listen
    /// queue): a spare of the reserve if one may be lent, else the refused
    /// connection that has lingered longest, closed early. False when
    /// neither is left. Each call uses up one of a bounded supply (spares,
    /// lingering refusals), so a loop that calls it on every `EMFILE` ends
    /// even when the number freed lies above a lowered limit.
    pub(super) fn free_a_number_for_a_refusal(&mut self) -> bool {
        self.fd_reserve.lend_one() || self.dispatch.close_oldest_refusal()
    }
}
