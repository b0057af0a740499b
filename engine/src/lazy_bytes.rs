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

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// `len` zeroed bytes, touched lazily; see the module's documentation.
pub struct LazyBytes {
    base: NonNull<u8>,
    len: usize,
}

impl LazyBytes {
    /// Reserves `len` zeroed bytes; an error when the address space (or
    /// strict overcommit's commit limit, or `RLIMIT_AS`) has no room.
    pub fn new(len: usize) -> io::Result<LazyBytes> {
        if len == 0 {
            return Ok(LazyBytes { base: NonNull::dangling(), len: 0 });
        }
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping of `len` bytes at an address the
        // kernel picks; nothing else refers to it.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(LazyBytes { base, len })
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

    #[test]
    fn an_empty_reservation_maps_nothing() {
        let bytes = LazyBytes::new(0).expect("empty");
        assert!(bytes.is_empty());
    }
}
