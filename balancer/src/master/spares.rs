//! The reserve's spare descriptors lent to a control or metrics client
//! that comes while the master is at its open-file limit: its listener's
//! accept failed for want of a descriptor, so one spare is let go and the
//! client accepted on it at once (before the loop turn's refill takes the
//! number back), so that `ctl status` and a scrape answer when they matter
//! most. What a worker's start needs stays in the reserve.

use std::os::fd::{OwnedFd, RawFd};

use super::Master;
use crate::reactor::sys;

impl Master {
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
