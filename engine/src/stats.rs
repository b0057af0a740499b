//! Per-worker counters in a shared memory block the master reads without
//! asking the worker.
//!
//! The master creates the block (a memfd, one cache-padded slot per worker id)
//! and passes its fd to every worker; each worker writes only its own slot,
//! with relaxed stores once per loop turn.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

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
    /// Connections refused because the slab was full (handed back to the
    /// master in `rr`, closed otherwise).
    pub rejected: AtomicU64,
    /// Times the worker found itself at its open-file limit (an accept failed
    /// with `EMFILE`/`ENFILE`, or a batch from the master arrived truncated).
    pub fd_limit_hits: AtomicU64,
    /// Loop turns: a watchdog sees a stuck worker when this stops moving.
    pub heartbeat: AtomicU64,
    /// The worker's process id.
    pub pid: AtomicU32,
    /// One of the `STATE_*` values.
    pub state: AtomicU32,
    /// Set by the master: the worker still serves but its health path says
    /// `503 draining`, so load balancers stop sending before it drains.
    pub lame_duck: AtomicU32,
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
    /// See [`WorkerCounters::state`].
    pub state: u32,
}

impl WorkerCounters {
    /// Reads every counter (each one atomically; the set is not a transaction).
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            fd_limit_hits: self.fd_limit_hits.load(Ordering::Relaxed),
            heartbeat: self.heartbeat.load(Ordering::Relaxed),
            state: self.state.load(Ordering::Acquire),
        }
    }

    /// Publishes a worker's counts.
    pub fn store(&self, counts: &CountersSnapshot) {
        self.accepted.store(counts.accepted, Ordering::Relaxed);
        self.requests.store(counts.requests, Ordering::Relaxed);
        self.live.store(counts.live, Ordering::Relaxed);
        self.rejected.store(counts.rejected, Ordering::Relaxed);
        self.fd_limit_hits.store(counts.fd_limit_hits, Ordering::Relaxed);
        self.heartbeat.store(counts.heartbeat, Ordering::Relaxed);
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
    base: NonNull<Slot>,
    slots: usize,
    map_len: usize,
}

// SAFETY: the block is only ever accessed through atomics, so sharing it between
// threads is as safe as sharing the atomics themselves.
unsafe impl Send for StatsBlock {}
// SAFETY: as above: every field in the mapping is an atomic.
unsafe impl Sync for StatsBlock {}

impl StatsBlock {
    /// Creates a block of `slots` zeroed slots in a memfd that child processes can map.
    pub fn create_shared(slots: usize) -> io::Result<(StatsBlock, OwnedFd)> {
        let name = c"ringmaster-stats";
        // SAFETY: `name` is a valid NUL-terminated string; the flags are valid.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let map_len = Self::map_len(slots);
        // SAFETY: `fd` is a valid memfd; ftruncate only sizes it.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), map_len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let block = Self::map(Some(fd.as_fd()), slots)?;
        Ok((block, fd))
    }

    /// Maps a block created by [`StatsBlock::create_shared`] in another process.
    pub fn open_shared(fd: BorrowedFd<'_>, slots: usize) -> io::Result<StatsBlock> {
        Self::map(Some(fd), slots)
    }

    /// A block private to this process (tests, benches, a worker run in-process).
    pub fn private(slots: usize) -> io::Result<StatsBlock> {
        Self::map(None, slots)
    }

    /// The counters of slot `index`, if the block has it.
    pub fn slot(&self, index: usize) -> Option<&WorkerCounters> {
        if index >= self.slots {
            return None;
        }
        // SAFETY: `index` is in bounds of the mapping, which lives as long as `self`
        // and holds zero-initialised (valid) atomics.
        Some(unsafe { &*self.base.as_ptr().add(index) })
    }

    /// How many slots the block has.
    pub fn len(&self) -> usize {
        self.slots
    }

    /// True when the block has no slots.
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    fn map_len(slots: usize) -> usize {
        (slots.max(1) * std::mem::size_of::<Slot>()).next_multiple_of(4096)
    }

    fn map(fd: Option<BorrowedFd<'_>>, slots: usize) -> io::Result<StatsBlock> {
        let map_len = Self::map_len(slots);
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping of `map_len` bytes; the kernel picks the address.
        let addr =
            unsafe { libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, flags, raw_fd, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<Slot>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(StatsBlock { base, slots, map_len })
    }
}

impl Drop for StatsBlock {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into it
        // outlives `self` (slot borrows are tied to `&self`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_block_is_seen_through_a_second_mapping() {
        let (block, fd) = StatsBlock::create_shared(4).expect("create stats block");
        let other = StatsBlock::open_shared(fd.as_fd(), 4).expect("map stats block");
        let counts = CountersSnapshot { accepted: 3, requests: 7, live: 1, ..Default::default() };
        block.slot(2).expect("slot 2").store(&counts);
        assert_eq!(other.slot(2).expect("slot 2").snapshot(), counts);
        assert_eq!(other.slot(1).expect("slot 1").snapshot(), CountersSnapshot::default());
        assert!(block.slot(4).is_none());
    }

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert!(std::mem::size_of::<Slot>() >= 64);
        assert_eq!(std::mem::size_of::<Slot>() % 64, 0);
    }
}
