//! The provided-buffer ring: receive buffers registered with the kernel at
//! start, picked by the kernel for each multishot receive and handed back
//! after the data is parsed. The worker's connections read into group
//! [`GROUP`]; the master's ring reads its workers' acks into a group of its own.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Buffer group id of the receive buffers.
pub const GROUP: u16 = 0;

/// Registered receive buffers and the ring that lends them to the kernel.
#[derive(Debug)]
pub struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_len: usize,
    count: u16,
    tail: u16,
    buffers: Box<[u8]>,
    size: usize,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and registers them as group [`GROUP`].
    pub fn register(submitter: &Submitter<'_>, count: u16, size: u32) -> io::Result<BufRing> {
        BufRing::register_group(submitter, count, size, GROUP)
    }

    /// Allocates `count` buffers of `size` bytes and registers them as `group`.
    pub fn register_group(submitter: &Submitter<'_>, count: u16, size: u32, group: u16) -> io::Result<BufRing> {
        if !count.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "receive buffer count must be a power of two"));
        }
        let entries_len = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: a fresh anonymous mapping; the kernel requires the ring page-aligned,
        // which mmap guarantees.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let entries =
            NonNull::new(addr.cast::<BufRingEntry>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let size = size as usize;
        let mut ring = BufRing {
            entries,
            entries_len,
            count,
            tail: 0,
            buffers: vec![0u8; usize::from(count) * size].into_boxed_slice(),
            size,
        };
        // SAFETY: the ring memory is mapped, page-aligned and outlives the registration:
        // its owner drops its io_uring (which unregisters) before this BufRing.
        unsafe { submitter.register_buf_ring_with_flags(ring.entries.as_ptr() as u64, count, group, 0)? };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The first `len` bytes of buffer `bid`, as the kernel filled them.
    ///
    /// The slice is not tied to `&self` so the worker can parse it while it
    /// updates its connections.
    ///
    /// # Safety
    /// `bid` must come from a completion not yet recycled, and the slice must
    /// be dropped before [`BufRing::recycle`] is called for `bid`.
    pub unsafe fn filled<'a>(&self, bid: u16, len: usize) -> &'a [u8] {
        let start = usize::from(bid) * self.size;
        let len = len.min(self.size);
        assert!(usize::from(bid) < usize::from(self.count), "buffer id out of range");
        // SAFETY: `start..start + len` lies inside `buffers`, which lives for the
        // whole worker run and is never moved or freed before the ring is dropped;
        // the kernel wrote these bytes before posting the completion and will not
        // write buffer `bid` again until it is recycled.
        unsafe { std::slice::from_raw_parts(self.buffers.as_ptr().add(start), len) }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * self.size) as u64;
        // SAFETY: `index < count`, inside the mapped entries; the kernel does not read
        // entries at or past the tail, which has not yet been advanced over this one.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail lives in the first entry's reserved field, inside the
        // mapping; the kernel reads it atomically, so it is written as an atomic
        // with release ordering after the entries it covers.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmaps the entries mapped in `register`; the ring that read them
        // is dropped first (field order in the worker and the master's reactor).
        unsafe { libc::munmap(self.entries.as_ptr().cast(), self.entries_len) };
    }
}
