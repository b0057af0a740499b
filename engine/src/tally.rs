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
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::monotonic_ns;

/// A shared mapping of a fd's first bytes, seen as `u64` counters.
#[derive(Debug)]
pub struct SharedMemory {
    base: NonNull<libc::c_void>,
    map_len: usize,
}

// SAFETY: the mapping is only ever accessed through atomics, so moving or
// sharing it between threads is as safe as sharing the atomics themselves.
unsafe impl Send for SharedMemory {}
// SAFETY: as above.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Maps the first `len` bytes of `fd` (rounded up to whole pages: an
    /// mmap offset must be page-aligned, so every mapping starts at 0).
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMemory> {
        let map_len = len.max(1).next_multiple_of(page_size());
        // SAFETY: a fresh shared mapping of `map_len` bytes of `fd` from offset 0;
        // the kernel picks the address and checks the fd allows it.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedMemory { base, map_len })
    }

    /// The counter at byte `offset`: `None` when it is not 8-aligned or not
    /// inside the mapping.
    pub fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        if offset % align_of::<AtomicU64>() != 0 || offset + size_of::<AtomicU64>() > self.map_len {
            return None;
        }
        // SAFETY: the counter is inside the mapping, 8-aligned (the offset is, and
        // mappings are page-aligned), and lives as long as `self`; any bit pattern
        // is a valid u64, and every process touches it atomically.
        Some(unsafe { self.base.byte_add(offset).cast::<AtomicU64>().as_ref() })
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map_shared`; references
        // into it are tied to `&self`.
        unsafe { libc::munmap(self.base.as_ptr(), self.map_len) };
    }
}

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
        let memory = SharedMemory::map_shared(fd, offset + TURNED_AT + size_of::<u64>())?;
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

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn memfd(len: usize) -> OwnedFd {
        // SAFETY: a valid NUL-terminated name and flags.
        let raw = unsafe { libc::memfd_create(c"tally-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0, "memfd_create: {}", io::Error::last_os_error());
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `fd` is a valid memfd; ftruncate only sizes it.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }, 0);
        fd
    }

    #[test]
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
    fn a_misaligned_offset_is_refused() {
        let fd = memfd(4096);
        assert!(AcceptTally::map_shared(fd.as_fd(), 12).is_err());
    }
}
