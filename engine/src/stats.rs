//! Per-worker counters in a shared memory block the master reads without
//! asking the worker.
//!
//! The master creates the block (a memfd, one cache-padded slot per worker id)
//! and passes its fd to every worker; each worker writes only its own slot,
//! with relaxed stores once per loop turn, and its acks of the master's
//! batches (`shared_acks.rs`).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::shared_acks::SharedAcks;
use crate::shared_memory::SharedMemory;

/// The worker is setting up its ring.
pub const STATE_STARTING: u32 = 0;
/// The worker's ring is up and it accepts or receives connections.
pub const STATE_READY: u32 = 1;
/// The worker has stopped taking connections and finishes the ones it has.
pub const STATE_DRAINING: u32 = 2;
/// The worker's loop has ended.
pub const STATE_STOPPED: u32 = 3;

/// One worker's counters.
#[repr(C)]
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Connections the worker took (accepted or received from the master).
    pub accepted: AtomicU64,
    /// Requests answered, error replies included.
    pub requests: AtomicU64,
    /// Connections open now.
    pub live: AtomicU64,
    /// Connections refused because the slab was full, or because they could
    /// not be watched (epoll out of memory or at the user's watch limit):
    /// handed back to the master in `rr`, closed otherwise.
    pub rejected: AtomicU64,
    /// Times the worker found itself at its open-file limit (an accept failed
    /// with `EMFILE`/`ENFILE`, or a batch from the master arrived truncated).
    pub fd_limit_hits: AtomicU64,
    /// Loop turns: a watchdog sees a stuck worker when this stops moving.
    pub heartbeat: AtomicU64,
    /// Connections the worker can hold now: its `--max-conns`, or fewer when
    /// its open-file limit at start allows fewer (see [`crate::reach`]), or, while it is at
    /// its open-file limit, the connections it held when an accept found no
    /// descriptor free. Set before the worker is ready; the master judges
    /// "full" by it, so a worker out of descriptors counts as full.
    pub capacity: AtomicU64,
    /// Idle keep-alive connections it holds now, which it closes (longest
    /// idle first) to make room when it is full: the master counts them as
    /// room.
    pub reclaimable: AtomicU64,
    /// Idle keep-alive connections it closed to make room for new ones.
    pub idle_reclaimed: AtomicU64,
    /// Times the application's handler panicked (each request it was
    /// answering got `500` and its connection closed; the worker served on).
    pub handler_panics: AtomicU64,
    /// The worker's process id.
    pub pid: AtomicU32,
    /// One of the `STATE_*` values.
    pub state: AtomicU32,
    /// Set by the master: the worker still serves but its health path says
    /// `503 draining`, so load balancers stop sending before it drains.
    pub lame_duck: AtomicU32,
    /// The worker's acks of the master's batches (see [`SharedAcks`]).
    pub acks: SharedAcks,
}

/// A snapshot of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// See [`WorkerCounters::accepted`].
    pub accepted: u64,
    /// See [`WorkerCounters::requests`].
    pub requests: u64,
    /// See [`WorkerCounters::live`].
    pub live: u64,
    /// See [`WorkerCounters::rejected`].
    pub rejected: u64,
    /// See [`WorkerCounters::fd_limit_hits`].
    pub fd_limit_hits: u64,
    /// See [`WorkerCounters::heartbeat`].
    pub heartbeat: u64,
    /// See [`WorkerCounters::capacity`].
    pub capacity: u64,
    /// See [`WorkerCounters::reclaimable`].
    pub reclaimable: u64,
    /// See [`WorkerCounters::idle_reclaimed`].
    pub idle_reclaimed: u64,
    /// See [`WorkerCounters::handler_panics`].
    pub handler_panics: u64,
    /// See [`WorkerCounters::state`].
    pub state: u32,
}

impl WorkerCounters {
    /// Reads every counter (each one atomically; the set is not a transaction).
    /// `live` is read first, and pairs with the worker's store of it after
    /// `accepted`'s: a connection counted live is counted taken too.
    pub fn snapshot(&self) -> CountersSnapshot {
        let live = self.live.load(Ordering::Acquire);
        CountersSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            live,
            rejected: self.rejected.load(Ordering::Relaxed),
            fd_limit_hits: self.fd_limit_hits.load(Ordering::Relaxed),
            heartbeat: self.heartbeat.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
            reclaimable: self.reclaimable.load(Ordering::Relaxed),
            idle_reclaimed: self.idle_reclaimed.load(Ordering::Relaxed),
            handler_panics: self.handler_panics.load(Ordering::Relaxed),
            state: self.state.load(Ordering::Acquire),
        }
    }

    /// Publishes a worker's counts.
    pub fn store(&self, counts: &CountersSnapshot) {
        self.accepted.store(counts.accepted, Ordering::Relaxed);
        self.requests.store(counts.requests, Ordering::Relaxed);
        // After `accepted` (see `snapshot`).
        self.live.store(counts.live, Ordering::Release);
        self.rejected.store(counts.rejected, Ordering::Relaxed);
        self.fd_limit_hits.store(counts.fd_limit_hits, Ordering::Relaxed);
        self.heartbeat.store(counts.heartbeat, Ordering::Relaxed);
        self.capacity.store(counts.capacity, Ordering::Relaxed);
        self.reclaimable.store(counts.reclaimable, Ordering::Relaxed);
        self.idle_reclaimed.store(counts.idle_reclaimed, Ordering::Relaxed);
        self.handler_panics.store(counts.handler_panics, Ordering::Relaxed);
    }

    /// True when the master has marked the worker a lame duck.
    pub fn is_lame_duck(&self) -> bool {
        self.lame_duck.load(Ordering::Relaxed) != 0
    }

    /// Marks the worker a lame duck (or not): its health path answers `503`.
    pub fn set_lame_duck(&self, lame: bool) {
        self.lame_duck.store(u32::from(lame), Ordering::Relaxed);
    }

    /// Sets the worker's state (`STATE_*`).
    pub fn set_state(&self, state: u32) {
        self.state.store(state, Ordering::Release);
    }
}

type Slot = CachePadded<WorkerCounters>;

/// A block of worker slots, shared between processes or private to one.
#[derive(Debug)]
pub struct StatsBlock {
    memory: SharedMemory,
    slots: usize,
}

impl StatsBlock {
    /// Creates a block of `slots` zeroed slots in a memfd that child processes can map.
    pub fn create_shared(slots: usize) -> io::Result<(StatsBlock, OwnedFd)> {
        let (memory, fd) = SharedMemory::create(c"ringmaster-stats", Self::bytes(slots))?;
        Ok((StatsBlock { memory, slots }, fd))
    }

    /// Maps a block created by [`StatsBlock::create_shared`] in another process.
    pub fn open_shared(fd: BorrowedFd<'_>, slots: usize) -> io::Result<StatsBlock> {
        Ok(StatsBlock { memory: SharedMemory::map_shared(fd, Self::bytes(slots))?, slots })
    }

    /// A block private to this process (tests, benches, a worker run in-process).
    pub fn private(slots: usize) -> io::Result<StatsBlock> {
        Ok(StatsBlock { memory: SharedMemory::private(Self::bytes(slots))?, slots })
    }

    /// The counters of slot `index`, if the block has it.
    pub fn slot(&self, index: usize) -> Option<&WorkerCounters> {
        if index >= self.slots {
            return None;
        }
        // SAFETY: a slot is atomics only (zeroed ones are valid), and every
        // process touches them atomically.
        let slot = unsafe { self.memory.at::<Slot>(index * std::mem::size_of::<Slot>()) };
        slot.map(|padded| &**padded)
    }

    /// How many slots the block has.
    pub fn len(&self) -> usize {
        self.slots
    }

    /// True when the block has no slots.
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// Bytes `slots` slots take.
    fn bytes(slots: usize) -> usize {
        slots.max(1) * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create")]
    fn shared_block_is_seen_through_a_second_mapping() {
        let (block, fd) = StatsBlock::create_shared(4).expect("create stats block");
        let other = StatsBlock::open_shared(fd.as_fd(), 4).expect("map stats block");
        let counts = CountersSnapshot { accepted: 3, requests: 7, live: 1, ..Default::default() };
        block.slot(2).expect("slot 2").store(&counts);
        assert_eq!(other.slot(2).expect("slot 2").snapshot(), counts);
        assert_eq!(other.slot(1).expect("slot 1").snapshot(), CountersSnapshot::default());
        assert!(block.slot(4).is_none());
    }

    /// The slots viewed over one mapping: each its own, aligned, and the
    /// last inside (Miri checks the views; a private block needs no memfd).
    #[test]
    fn every_slot_is_its_own_and_the_last_is_inside() {
        let block = StatsBlock::private(3).expect("a private block");
        for (i, value) in [(0, 11), (1, 12), (2, 13)] {
            let slot = block.slot(i).expect("a slot");
            assert_eq!(std::ptr::from_ref(slot).align_offset(align_of::<Slot>()), 0, "slot {i} aligned");
            slot.store(&CountersSnapshot { accepted: value, handler_panics: value, ..Default::default() });
            slot.acks.publish(0, &[crate::channel::Ack { received: 1, adopted: 1 }], value);
            slot.set_state(STATE_READY);
        }
        for (i, value) in [(0, 11), (1, 12), (2, 13)] {
            let snapshot = block.slot(i).expect("a slot").snapshot();
            assert_eq!((snapshot.accepted, snapshot.handler_panics, snapshot.state), (value, value, STATE_READY));
            assert_eq!(block.slot(i).expect("a slot").acks.acked_at(0), value);
        }
        assert!(block.slot(3).is_none());
    }

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert!(std::mem::size_of::<Slot>() >= 64);
        assert_eq!(std::mem::size_of::<Slot>() % 64, 0);
    }
}
