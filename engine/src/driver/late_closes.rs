//! Handed-over connections closing a moment late (see [`LateCloses`]).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

/// How long a worker keeps its fd of a handed-over connection after it is
/// done with it (its FIN sent), in milliseconds of the coarse clock, which
/// moves a jiffy at a time: until its next step or two (up to 4 ms at
/// HZ=250), mostly longer than the master takes under load to read the ack
/// and close its copy (a batch wait or two, 200–300 µs). 5 ms took no more
/// teardowns off the master in `perf`.
pub(super) const LATE_CLOSE_MS: u64 = 2;
/// Handed-over connections kept open at once for their late close; past
/// that, one closes at once.
const LATE_CLOSES: usize = 1024;

/// Handed-over connections the worker is done with, kept open a moment
/// (their FIN sent) so that the master's close of its copy, which comes once
/// it has read the ack, is usually not the last: the socket's teardown then
/// runs in the worker, one of N, not in the one master every connection
/// passes through. Fixed capacity: nothing allocates after start.
pub(super) struct LateCloses {
    fds: VecDeque<(u64, OwnedFd)>,
}

impl LateCloses {
    pub(super) fn new() -> LateCloses {
        LateCloses { fds: VecDeque::with_capacity(LATE_CLOSES) }
    }

    /// Keeps `fd` until [`LATE_CLOSE_MS`] after `now`; gives it back (to
    /// close now) when full.
    pub(super) fn keep(&mut self, now: u64, fd: OwnedFd) -> Option<OwnedFd> {
        if self.fds.len() == self.fds.capacity() {
            return Some(fd);
        }
        self.fds.push_back((now + LATE_CLOSE_MS, fd));
        None
    }

    /// The next fd whose time has come at `now`.
    pub(super) fn next_due(&mut self, now: u64) -> Option<OwnedFd> {
        if self.fds.front().is_some_and(|&(due, _)| due <= now) {
            return self.fds.pop_front().map(|(_, fd)| fd);
        }
        None
    }
}
