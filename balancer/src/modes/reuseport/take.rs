//! Taking what waits on a worker's listener, without waiting, for the
//! master to hand on.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use ringmaster_engine::out_of_resources;

use crate::reactor::sys::{accept, accept_goes_on, set_nonblocking};

/// What a take from a worker's queue came to.
#[derive(Debug)]
pub(super) struct Take {
    /// The connections taken (pushed onto the caller's vector).
    pub(super) taken: u32,
    /// The accept that stopped it found the master out of descriptors or
    /// memory: a take from any other queue would fail the same way now.
    pub(super) starved: Option<io::Error>,
}

/// Takes up to `queue` connections waiting on `listener` without waiting
/// (the worker may take some meanwhile), into `out`.
pub(super) fn take_queued(listener: BorrowedFd<'_>, queue: u32, out: &mut Vec<OwnedFd>) -> Take {
    // Its worker made it non-blocking already; one handed down may not be yet.
    if set_nonblocking(listener.as_raw_fd()).is_err() {
        return Take { taken: 0, starved: None };
    }
    take_each(|| accept(listener.as_raw_fd()), queue, out)
}

/// [`take_queued`]'s loop over the non-blocking `accept` of one listener.
pub(super) fn take_each(mut accept: impl FnMut() -> io::Result<OwnedFd>, queue: u32, out: &mut Vec<OwnedFd>) -> Take {
    let mut take = Take { taken: 0, starved: None };
    while take.taken < queue {
        match accept() {
            Ok(connection) => {
                out.push(connection);
                take.taken += 1;
            }
            // A connection reset while it waited (it left the queue: the
            // loop still ends), or a signal: go on, as the master's own
            // accepts do.
            Err(e) if accept_goes_on(&e) => {}
            Err(e) if e.raw_os_error().is_some_and(out_of_resources) => {
                take.starved = Some(e);
                break;
            }
            // Empty (its worker took the rest): nothing more to take.
            Err(_) => break,
        }
    }
    take
}
