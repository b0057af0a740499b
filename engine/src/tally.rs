//! [`AcceptTally`]: two counters in memory shared with another process, where
//! a worker adds the connections it accepted on its own listener and notes
//! when its loop last turned. The master passes it when something outside
//! the worker steers connections by how many wait unaccepted, and for how
//! long (the `reuseport --steer load` program: it counts what it sends to
//! each listener, the worker counts what it takes; connections waiting on a
//! worker whose loop has not turned for a while wait on a stalled worker).
//!
//! The memory is whatever `mmap` of the given fd shows ([`SharedMemory`]):
//! a memfd, or a BPF array map created mmapable.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;

use crate::shared_memory::SharedMemory;
use crate::sys::monotonic_ns;

/// A worker's shared tally: at its offset, the connections accepted on its
/// own listener (`u64`, added to by every process that serves it); right
/// after, when the loop of the one serving it now last turned (`u64`,
/// nanoseconds on `CLOCK_MONOTONIC`).
#[derive(Debug)]
pub struct AcceptTally {
    memory: SharedMemory,
    offset: usize,
}

/// Where the turn time sits after the accepted count.
pub const TURNED_AT: usize = size_of::<u64>();

impl AcceptTally {
    /// Maps the tally at byte `offset` (8-aligned) of `fd`.
    pub fn map_shared(fd: BorrowedFd<'_>, offset: usize) -> io::Result<AcceptTally> {
        let end = offset.checked_add(TURNED_AT + size_of::<u64>());
        let end = end.ok_or_else(|| io::Error::other(format!("accept tally offset {offset} is past any mapping")))?;
        let memory = SharedMemory::map_shared(fd, end)?;
        if memory.u64_at(offset).is_none() {
            return Err(io::Error::other(format!("accept tally offset {offset} is not 8-aligned")));
        }
        Ok(AcceptTally { memory, offset })
    }

    /// Adds `n` connections accepted.
    pub fn add(&self, n: u64) {
        if let Some(counter) = self.memory.u64_at(self.offset) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Notes that the loop turns now.
    pub fn turned_now(&self) {
        if let Some(at) = self.memory.u64_at(self.offset + TURNED_AT) {
            at.store(monotonic_ns(), Ordering::Relaxed);
        }
    }

    /// The count so far, as every process adding to it left it.
    pub fn accepted(&self) -> u64 {
        self.memory.u64_at(self.offset).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// When the loop last turned, as [`AcceptTally::turned_now`] noted it
    /// (nanoseconds on `CLOCK_MONOTONIC`).
    pub fn turned_at(&self) -> u64 {
        self.memory.u64_at(self.offset + TURNED_AT).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    fn memfd(len: usize) -> OwnedFd {
        SharedMemory::create(c"tally-test", len).expect("a memfd").1
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create")]
    fn two_mappings_of_one_counter_add_up() {
        let fd = memfd(3 * 4096);
        let a = AcceptTally::map_shared(fd.as_fd(), 4096 + 64).expect("map a");
        let b = AcceptTally::map_shared(fd.as_fd(), 4096 + 64).expect("map b");
        let other = AcceptTally::map_shared(fd.as_fd(), 4096 + 80).expect("map the next tally");
        a.add(3);
        b.add(4);
        b.turned_now();
        assert_eq!((a.accepted(), b.accepted(), other.accepted()), (7, 7, 0));
        assert!(a.turned_at() > 0 && other.turned_at() == 0, "{} {}", a.turned_at(), other.turned_at());
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create")]
    fn a_misaligned_offset_is_refused() {
        let fd = memfd(4096);
        assert!(AcceptTally::map_shared(fd.as_fd(), 12).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create")]
    fn an_offset_past_any_mapping_is_refused() {
        let fd = memfd(4096);
        assert!(AcceptTally::map_shared(fd.as_fd(), usize::MAX - 7).is_err());
    }
}
