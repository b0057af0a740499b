//! The provided-buffer ring: receive buffers registered with the kernel at
//! start, picked by the kernel for each multishot receive and handed back
//! after the data is parsed. The worker's connections read into group
//! [`GROUP`]; the master's ring reads its workers' acks into a group of its own.
//!
//! A bundle receive fills several buffers in one completion: the first is
//! named by the completion, the others are the ones that followed it in the
//! ring. Buffers come back out of order, so the ring remembers which buffer
//! it put at each position ([`Bundle`] walks them).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

use crate::refused::reservation_refused;

/// Buffer group id of the receive buffers.
pub const GROUP: u16 = 0;

/// Registered receive buffers and the ring that lends them to the kernel.
#[derive(Debug)]
pub struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_len: usize,
    count: u16,
    tail: u16,
    /// The buffers, `count * size` bytes: a raw pointer (from `Box::into_raw`,
    /// freed in `Drop`), not a `Box`, because the kernel writes them through
    /// the addresses the ring carries. An address taken through a `&[u8]` of
    /// a `Box` allows reads only: a write through it is undefined behaviour
    /// (Miri, both borrow models, once the test writes as the kernel does).
    buffers: NonNull<[u8]>,
    size: usize,
    /// The buffer put at each ring position (`position & (count - 1)`).
    ids: Box<[u16]>,
    /// The ring position each buffer was last put at: a bundle is found from
    /// its first buffer rather than from a count of buffers taken, which a
    /// completion posted out of turn would throw off.
    positions: Box<[u16]>,
    /// Buffers given back since start: a receive that found the ring empty
    /// tries again once this has moved (see the io_uring driver).
    returned: u64,
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
        let mut ring = BufRing::map(count, size)?;
        // SAFETY: the ring memory is mapped, page-aligned and outlives the registration:
        // its owner drops its io_uring (which unregisters) before this BufRing.
        unsafe { submitter.register_buf_ring_with_flags(ring.entries.as_ptr() as u64, count, group, 0)? };
        ring.lend_all();
        Ok(ring)
    }

    /// The buffers and the ring's entries, not yet lent: `count` is a power of two.
    fn map(count: u16, size: u32) -> io::Result<BufRing> {
        // A refusal is an error, not an abort: under an address-space limit
        // the worker says so and exits (see `refused.rs`). The buffers are
        // made before the ring is mapped, which a refusal would leave behind.
        let refused = |e| reservation_refused(e, "receive buffers", format_args!("{count} x {size}"));
        let buffers: Box<[u8]> = crate::fallible::zeroed(usize::from(count) * size as usize).map_err(refused)?;
        let ids = crate::fallible::zeroed(usize::from(count)).map_err(refused)?;
        let positions = crate::fallible::zeroed(usize::from(count)).map_err(refused)?;
        let entries_len = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // Miri maps only `MAP_PRIVATE | MAP_ANONYMOUS`.
        let populate = if cfg!(miri) { 0 } else { libc::MAP_POPULATE };
        // SAFETY: a fresh anonymous mapping; the kernel requires the ring page-aligned,
        // which mmap guarantees.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(refused(io::Error::last_os_error()));
        }
        let entries =
            NonNull::new(addr.cast::<BufRingEntry>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let buffers = NonNull::from(Box::leak(buffers));
        Ok(BufRing { entries, entries_len, count, tail: 0, buffers, size: size as usize, ids, positions, returned: 0 })
    }

    /// Puts every buffer in the ring, in id order.
    fn lend_all(&mut self) {
        for bid in 0..self.count {
            self.push(bid);
        }
        self.publish();
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
        unsafe { std::slice::from_raw_parts(self.buffers.cast::<u8>().as_ptr().add(start), len) }
    }

    /// The buffers a receive of `len` bytes filled, `first` (the completion's
    /// buffer id) first: every one full but the last. `len` at most one
    /// buffer's size (a receive that is not a bundle) walks `first` alone.
    pub fn bundle(&self, first: u16, len: usize) -> Bundle {
        Bundle { first, start: self.positions[usize::from(first)], walked: 0, left: len }
    }

    /// The size of one buffer in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
        self.returned += 1;
    }

    /// Buffers given back since start ([`BufRing::recycle`]).
    pub fn returned(&self) -> u64 {
        self.returned
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // Exposed, from the raw pointer that owns the buffers: the kernel writes through it.
        let addr =
            self.buffers.cast::<u8>().as_ptr().expose_provenance() as u64 + (usize::from(bid) * self.size) as u64;
        // SAFETY: `index < count`, inside the mapped entries; the kernel does not read
        // entries at or past the tail, which has not yet been advanced over this one.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.ids[index] = bid;
        self.positions[usize::from(bid)] = self.tail;
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

/// The buffers of one receive, walked in the order the kernel filled them
/// (see [`BufRing::bundle`]).
#[derive(Debug)]
pub struct Bundle {
    first: u16,
    /// The ring position of `first`.
    start: u16,
    walked: u16,
    /// Bytes not yet walked.
    left: usize,
}

impl Bundle {
    /// The next buffer and the bytes the kernel put in it; `None` once all
    /// are walked, or if the ring no longer knows which buffer followed
    /// (its position reused: every other buffer came back meanwhile).
    pub fn next(&mut self, ring: &BufRing) -> Option<(u16, usize)> {
        if self.left == 0 {
            return None;
        }
        let bid = if self.walked == 0 {
            self.first
        } else {
            let position = self.start.wrapping_add(self.walked);
            let bid = ring.ids[usize::from(position & (ring.count - 1))];
            if ring.positions[usize::from(bid)] != position {
                return None;
            }
            bid
        };
        let filled = self.left.min(ring.size);
        self.left -= filled;
        self.walked = self.walked.wrapping_add(1);
        Some((bid, filled))
    }

    /// True once every buffer was walked.
    pub fn is_done(&self) -> bool {
        self.left == 0
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmaps the entries mapped in `register`; the ring that read them
        // is dropped first (field order in the worker and the master's reactor).
        unsafe { libc::munmap(self.entries.as_ptr().cast(), self.entries_len) };
        // SAFETY: `buffers` came from `Box::leak` in `map` and is freed only here;
        // the ring that wrote into them is gone (as above), and `filled`'s slices
        // are dropped before their buffer is recycled, so before this.
        drop(unsafe { Box::from_raw(self.buffers.as_ptr()) });
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use io_uring::{cqueue, opcode, types::Fd, IoUring};

    use super::*;
    use crate::uring;

    const SIZE: usize = 8;

    fn socket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let done =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        assert_eq!(done, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: socketpair succeeded: both fds are new and owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd, bytes: &[u8]) {
        // SAFETY: writes `bytes` from a live slice to a socket we own.
        let wrote = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(wrote, bytes.len() as isize, "write: {}", io::Error::last_os_error());
    }

    /// Arms `recv` on the ring and collects its completions until `len`
    /// bytes came: (buffer id, bytes) of each.
    fn receive(ring: &mut IoUring, recv: io_uring::squeue::Entry, len: usize) -> Vec<(u16, usize)> {
        // SAFETY: the entry carries no pointer of ours; it reads into the
        // registered buffers, which outlive the ring.
        unsafe { uring::push(ring, &recv.user_data(7)) }.expect("push");
        let mut got = Vec::new();
        let mut total = 0;
        while total < len {
            ring.submit_and_wait(1).expect("wait");
            for cqe in ring.completion() {
                let bid = cqueue::buffer_select(cqe.flags()).expect("a buffer");
                assert!(cqe.result() > 0, "receive failed: {}", cqe.result());
                got.push((bid, cqe.result() as usize));
                total += cqe.result() as usize;
            }
        }
        got
    }

    /// A bundle's buffers are the ring's next positions, not the next ids:
    /// with buffers given back out of order, the walk still returns the
    /// bytes in the order they came.
    #[test]
    #[cfg_attr(miri, ignore = "io_uring")]
    fn bundle_walks_ring_order() {
        let mut ring = uring::build_ring(8).expect("ring");
        if !uring::recv_bundles(&ring) {
            eprintln!("skipped: this kernel has no receive bundles");
            return;
        }
        let mut bufs = BufRing::register(&ring.submitter(), 4, SIZE as u32).expect("buffers");
        // Take all four buffers, one per completion, and give them back as 1, 0, 3, 2.
        let (reader, writer) = socket_pair();
        write(&writer, &[b'.'; 4 * SIZE]);
        let taken = receive(&mut ring, opcode::RecvMulti::new(Fd(reader.as_raw_fd()), GROUP).build(), 4 * SIZE);
        assert_eq!(taken, [(0, SIZE), (1, SIZE), (2, SIZE), (3, SIZE)]);
        for bid in [1, 0, 3, 2] {
            bufs.recycle(bid);
        }
        // Now one receive over four buffers (the kernel may split it in completions).
        let (reader, writer) = socket_pair();
        let sent = b"abcdefghijklmnopqrstuvwxyz0123";
        write(&writer, sent);
        let bundle = opcode::RecvMultiBundle::new(Fd(reader.as_raw_fd()), GROUP).build();
        let completions = receive(&mut ring, bundle, sent.len());
        assert!(completions.iter().any(|&(_, len)| len > SIZE), "no completion was a bundle: {completions:?}");
        let mut walked = Vec::new();
        let mut order = Vec::new();
        for (first, len) in completions {
            let mut bundle = bufs.bundle(first, len);
            while let Some((bid, filled)) = bundle.next(&bufs) {
                // SAFETY: `bid` came with a completion and is not recycled in this test.
                walked.extend_from_slice(unsafe { bufs.filled(bid, filled) });
                order.push(bid);
            }
            assert!(bundle.is_done(), "walk lost its way at {order:?}");
        }
        assert_eq!(order, [1, 0, 3, 2], "buffers in ring order");
        assert_eq!(walked, sent, "{:?}", String::from_utf8_lossy(&walked));
        drop(ring);
    }

    /// What the kernel does with the ring, over plain memory: takes the
    /// entry at `head` (published: before the tail) and writes `bytes` into
    /// its buffer through the address the entry carries.
    fn kernel_fills(ring: &BufRing, head: u16, bytes: &[u8]) -> u16 {
        // SAFETY: the tail is inside the mapping; the kernel reads it atomically.
        let tail = unsafe { (*BufRingEntry::tail(ring.entries.as_ptr()).cast::<AtomicU16>()).load(Ordering::Acquire) };
        assert!(head < tail, "entry {head} not published (tail {tail})");
        // SAFETY: `head & (count - 1)` is inside the mapped entries.
        let entry = unsafe { &*ring.entries.as_ptr().add(usize::from(head & (ring.count - 1))) };
        assert!(bytes.len() <= entry.len() as usize);
        let to = std::ptr::with_exposed_provenance_mut::<u8>(entry.addr() as usize);
        // SAFETY: the entry names a whole buffer of ours, lent to the "kernel".
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len()) };
        entry.bid()
    }

    /// The walk of [`bundle_walks_ring_order`] without a ring: the buffers
    /// are written as the kernel writes them (through the entries' addresses)
    /// and read back through `filled`, so Miri checks the ring's pointers.
    #[test]
    fn a_bundle_over_buffers_given_back_out_of_order_reads_back_in_order() {
        let mut bufs = BufRing::map(4, SIZE as u32).expect("buffers");
        bufs.lend_all();
        for head in 0..4 {
            assert_eq!(kernel_fills(&bufs, head, &[b'.'; SIZE]), head, "lent in id order");
        }
        for bid in [1, 0, 3, 2] {
            bufs.recycle(bid);
        }
        // One receive of 30 bytes over positions 4.. (a bundle: four buffers).
        let sent = b"abcdefghijklmnopqrstuvwxyz0123";
        let first = kernel_fills(&bufs, 4, &sent[..SIZE]);
        for (head, chunk) in (5..).zip(sent[SIZE..].chunks(SIZE)) {
            kernel_fills(&bufs, head, chunk);
        }
        let mut bundle = bufs.bundle(first, sent.len());
        let (mut walked, mut order) = (Vec::new(), Vec::new());
        while let Some((bid, filled)) = bundle.next(&bufs) {
            // SAFETY: `bid` was filled and is not recycled in this test.
            walked.extend_from_slice(unsafe { bufs.filled(bid, filled) });
            order.push(bid);
        }
        assert!(bundle.is_done());
        assert_eq!(order, [1, 0, 3, 2], "buffers in ring order");
        assert_eq!(walked, sent);
        // A buffer given back while another's bytes are still read.
        // SAFETY: buffer 3 is not recycled while `held` lives.
        let held = unsafe { bufs.filled(3, SIZE) };
        bufs.recycle(1);
        assert_eq!(held, &sent[2 * SIZE..3 * SIZE]);
    }
}
