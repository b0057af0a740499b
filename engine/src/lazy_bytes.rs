//! [`LazyBytes`]: a large zeroed buffer made at start whose pages the
//! kernel provides only when first touched (a private anonymous mapping).
//!
//! A worker reserves room per connection slot (carry and output buffers)
//! and per body buffer up front, sized for the limits, and touches only
//! what its connections use. The reservation can be far larger than the
//! machine's memory (16,384 slots × 2 × a 4 MiB `max_response` is 137 GB)
//! and Linux's default overcommit heuristic refuses one allocation larger
//! than RAM and swap, so the heap cannot hold it: `MAP_NORESERVE` keeps it
//! out of that check (strict overcommit, `vm.overcommit_memory=2`, still
//! counts it, and refuses with an error rather than an abort).
//!
//! A touched page stays resident until given back: a buffer that held a
//! large exchange gives its pages past the first [`KEPT`] bytes back when
//! it is freed ([`LazyBytes::release_touched`]), else every slot that once
//! answered megabytes would keep them for the life of the worker.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut, Range};
use std::ptr::NonNull;

/// `len` zeroed bytes, touched lazily; see the module's documentation.
pub struct LazyBytes {
    base: NonNull<u8>,
    len: usize,
    /// The kernel's page size: what `madvise` works in.
    page: usize,
}

/// Bytes at the start of a buffer that stay resident when it is freed: what
/// small exchanges (the common case) touch, so freeing them costs no
/// system call and their next use no page faults.
pub const KEPT: usize = 64 * 1024;

impl LazyBytes {
    /// Reserves `len` zeroed bytes; an error when the address space (or
    /// strict overcommit's commit limit, or `RLIMIT_AS`) has no room.
    pub fn new(len: usize) -> io::Result<LazyBytes> {
        if len == 0 {
            return Ok(LazyBytes { base: NonNull::dangling(), len: 0, page: 1 });
        }
        // Miri maps only `MAP_PRIVATE | MAP_ANONYMOUS` (and allocates it all at
        // once): the reservation's accounting is no part of what it checks.
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if cfg!(miri) { 0 } else { libc::MAP_NORESERVE };
        // SAFETY: a fresh anonymous mapping of `len` bytes at an address the
        // kernel picks; nothing else refers to it.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        Ok(LazyBytes { base, len, page })
    }

    /// Gives back the memory of the whole pages inside `range` (clamped to
    /// the buffer): they read as zeros again, and take memory only when
    /// touched again. Bytes outside `range` keep their value.
    pub fn release(&mut self, range: Range<usize>) {
        let start = range.start.next_multiple_of(self.page);
        let end = range.end.min(self.len) / self.page * self.page;
        if start >= end {
            return;
        }
        if cfg!(miri) {
            // Miri has no madvise: what the pages read as afterwards, zeros.
            self[start..end].fill(0);
            return;
        }
        // SAFETY: `start..end` is page-aligned (the mapping starts on a page)
        // and inside the private anonymous mapping made in `new`, which
        // stays mapped; `&mut self` means no reference into it is live.
        // MADV_DONTNEED on such a mapping frees the pages, and the next
        // touch gets a zero-filled one: the bytes stay initialised (zeros).
        // Its error is ignored: it fails only on locked memory (an
        // application that called `mlockall`), and the pages then stay
        // resident, as they did before, nothing worse.
        let _ = unsafe { libc::madvise(self.base.as_ptr().add(start).cast(), end - start, libc::MADV_DONTNEED) };
    }

    /// A buffer at `buffer` that was freed with its first `touched` bytes
    /// used gives back the pages it touched past its first [`KEPT`] bytes;
    /// nothing (no system call) when it used no more than those.
    pub fn release_touched(&mut self, buffer: Range<usize>, touched: usize) {
        if touched <= KEPT {
            return;
        }
        // Up to the end of the page of the last byte used, but not past the
        // buffer: a page it shares with the next one stays.
        let end = buffer.start.saturating_add(touched).next_multiple_of(self.page).min(buffer.end);
        self.release(buffer.start + KEPT..end);
    }
}

impl LazyBytes {
    /// The first byte, as a raw pointer made without a reference to the
    /// buffer: pointers taken from it earlier stay valid (a `&mut [u8]` over
    /// the whole buffer would end them; see `conn::OutBuf`).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Deref for LazyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `base` points at `len` mapped, initialised (zero-filled)
        // bytes living as long as `self` (or is dangling with `len` 0).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl DerefMut for LazyBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for LazyBytes {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping made in `new`; references
            // into it are tied to `self`.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        }
    }
}

impl fmt::Debug for LazyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBytes").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri allocates a mapping whole")]
    fn a_reservation_larger_than_memory_is_zeroed_and_writable_where_used() {
        // 1 TiB: more than any test machine's RAM and swap. Strict
        // overcommit counts it all the same: there it must be an error.
        let strict = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() == "2");
        if strict {
            assert!(LazyBytes::new(1 << 40).is_err(), "strict overcommit refuses 1 TiB");
            return;
        }
        let mut bytes = LazyBytes::new(1 << 40).expect("address space for 1 TiB");
        assert_eq!(bytes.len(), 1 << 40);
        let last = bytes.len() - 1;
        assert_eq!((bytes[0], bytes[last]), (0, 0));
        bytes[last] = 7;
        assert_eq!(bytes[last], 7);
    }

    /// Pages of this process's mapping at `bytes` that are resident (mincore).
    fn resident_pages(bytes: &LazyBytes) -> usize {
        let mut map = vec![0u8; bytes.len.div_ceil(bytes.page)];
        // SAFETY: `bytes` is a mapping of `len` bytes, and `map` has a byte per page of it.
        let done = unsafe { libc::mincore(bytes.base.as_ptr().cast(), bytes.len, map.as_mut_ptr()) };
        assert_eq!(done, 0, "mincore: {}", io::Error::last_os_error());
        map.iter().filter(|&&p| p & 1 == 1).count()
    }

    #[test]
    #[cfg_attr(miri, ignore = "mincore")]
    fn released_pages_read_as_zeros_and_are_no_longer_resident() {
        let mut bytes = LazyBytes::new(1 << 20).expect("1 MiB");
        let page = bytes.page;
        bytes.fill(7);
        assert_eq!(resident_pages(&bytes), (1 << 20) / page);
        // Not page-aligned: only the whole pages inside are given back.
        bytes.release(page + 1..5 * page + 1);
        assert_eq!(resident_pages(&bytes), (1 << 20) / page - 3);
        assert_eq!(bytes[page], 7, "the page the range starts in is kept");
        assert!(bytes[2 * page..5 * page].iter().all(|&b| b == 0));
        assert_eq!(bytes[5 * page], 7, "the page the range ends in is kept");
        bytes[3 * page] = 1;
        assert_eq!(bytes[3 * page], 1, "writable again");
    }

    #[test]
    #[cfg_attr(miri, ignore = "mincore")]
    fn a_buffer_freed_gives_back_what_it_touched_past_the_kept_bytes() {
        let mut bytes = LazyBytes::new(5 * KEPT).expect("a buffer");
        let page = bytes.page;
        // Two buffers of 2 KEPT + 100 bytes (not page-aligned); the first used all of it.
        let each = 2 * KEPT + 100;
        bytes[..2 * each].fill(7);
        let resident = resident_pages(&bytes);
        bytes.release_touched(0..each, KEPT);
        assert_eq!(resident_pages(&bytes), resident, "a small use gives nothing back");
        bytes.release_touched(0..each, each);
        assert_eq!(resident_pages(&bytes), resident - KEPT / page, "its pages past KEPT up to the shared one");
        assert_eq!(bytes[each], 7, "the next buffer keeps its bytes");
        assert!(bytes[KEPT..each / page * page].iter().all(|&b| b == 0));
    }

    /// What `release` promises of the bytes, without asking the kernel what
    /// is resident (so Miri checks it too).
    #[test]
    fn released_whole_pages_read_as_zeros_and_the_rest_keeps_its_bytes() {
        let page = LazyBytes::new(1).expect("a byte").page;
        let mut bytes = LazyBytes::new(8 * page).expect("8 pages");
        let len = bytes.len();
        bytes.fill(7);
        bytes.release(page + 1..3 * page + 1);
        let zeroed = bytes.iter().enumerate().filter(|&(_, &b)| b == 0).map(|(i, _)| i);
        assert!(zeroed.eq(2 * page..3 * page), "only the whole page inside the range");
        bytes.release(len - page..len + page);
        assert!(bytes[len - page..].iter().all(|&b| b == 0), "clamped to the buffer");
        bytes[len - 1] = 1;
        assert_eq!(bytes[len - 1], 1, "writable again");
    }

    #[test]
    fn an_empty_reservation_maps_nothing() {
        let bytes = LazyBytes::new(0).expect("empty");
        assert!(bytes.is_empty());
    }
}
