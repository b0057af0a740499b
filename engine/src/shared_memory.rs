//! [`SharedMemory`]: a mapping of a fd's first pages (a memfd, or a BPF
//! array map created mmapable) shared with other processes, or of pages
//! private to this one, read and written only through atomics: the stats
//! block's slots, the accept tally's counters.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

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
    /// `len` zeroed bytes (rounded up to whole pages) in a new memfd named
    /// `name`, mapped, and the memfd, for other processes to map.
    pub fn create(name: &CStr, len: usize) -> io::Result<(SharedMemory, OwnedFd)> {
        // SAFETY: `name` is a valid NUL-terminated string; the flags are valid.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = len.max(1).next_multiple_of(page_size());
        // SAFETY: `fd` is a valid memfd; ftruncate only sizes it.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Self::map_shared(fd.as_fd(), len)?, fd))
    }

    /// Maps the first `len` bytes of `fd` (rounded up to whole pages: an
    /// mmap offset must be page-aligned, so every mapping starts at 0).
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMemory> {
        Self::map(Some(fd), len)
    }

    /// `len` zeroed bytes (rounded up to whole pages) private to this process.
    pub fn private(len: usize) -> io::Result<SharedMemory> {
        Self::map(None, len)
    }

    fn map(fd: Option<BorrowedFd<'_>>, len: usize) -> io::Result<SharedMemory> {
        let map_len = len.max(1).next_multiple_of(page_size());
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping of `map_len` bytes (of `fd` from offset 0, or
        // anonymous); the kernel picks the address and checks the fd allows it.
        let addr =
            unsafe { libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, flags, raw_fd, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedMemory { base, map_len })
    }

    /// A `T` at byte `offset`: `None` when it is not aligned for `T` or not
    /// inside the mapping.
    ///
    /// # Safety
    /// Every bit pattern must be a valid `T` (zeroed memory included), and
    /// every process that maps the memory must touch it only through `T`'s
    /// atomics.
    pub(crate) unsafe fn at<T>(&self, offset: usize) -> Option<&T> {
        // `checked_add`: an offset near `usize::MAX` wraps past the check.
        if offset % align_of::<T>() != 0 || offset.checked_add(size_of::<T>()).is_none_or(|end| end > self.map_len) {
            return None;
        }
        // SAFETY: inside the mapping, aligned (the offset is, and mappings are
        // page-aligned), living as long as `self`; the caller vouches for the rest.
        Some(unsafe { self.base.byte_add(offset).cast::<T>().as_ref() })
    }

    /// The counter at byte `offset`: `None` when it is not 8-aligned or not
    /// inside the mapping.
    pub fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        // SAFETY: any bit pattern is a valid u64, and every process touches the
        // counters atomically.
        unsafe { self.at::<AtomicU64>(offset) }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; references
        // into it are tied to `&self`.
        unsafe { libc::munmap(self.base.as_ptr(), self.map_len) };
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

    #[test]
    fn a_counter_is_found_only_aligned_and_inside() {
        let memory = SharedMemory::private(64).expect("a page");
        let page = memory.map_len;
        memory.u64_at(8).expect("inside").store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(memory.u64_at(8).map(|c| c.load(std::sync::atomic::Ordering::Relaxed)), Some(7));
        assert!(memory.u64_at(page - 8).is_some(), "the last counter");
        assert!(memory.u64_at(page).is_none(), "past the end");
        assert!(memory.u64_at(page - 4).is_none(), "misaligned and across the end");
        assert!(memory.u64_at(12).is_none(), "misaligned");
    }

    /// An offset so large that adding the counter's size wraps (an accept
    /// tally's offset comes from an environment variable) is outside too.
    #[test]
    fn an_offset_whose_end_wraps_is_outside() {
        let memory = SharedMemory::private(64).expect("a page");
        assert!(memory.u64_at(usize::MAX - 7).is_none());
    }
}
