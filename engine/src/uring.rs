//! The ring moves the worker and the master both make: build a worker's ring,
//! push an entry (submitting first when the queue is full), wait for
//! completions, and copy a batch of completions out so handlers may submit
//! while they run; and whether the kernel's receives may be bundles.

use std::io;

use io_uring::{squeue, IoUring};

/// One completion: `user_data`, result, flags.
pub type Completion = (u64, i32, u32);

/// Pushes `entry`, handing the queue to the kernel first when it is full.
///
/// # Safety
/// Every pointer `entry` carries (buffers, msghdrs, timespecs) must stay valid
/// and unmoved until its completion is reaped or the ring is dropped.
pub unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: the caller guarantees the entry's pointers (see above).
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        submit(ring, 0)?;
    }
}

/// `user_data` of fire-and-forget submissions (close, cancel): no token
/// packs to 0, so loops skip the completion such an op posts when it fails.
pub const IGNORED: u64 = 0;

/// Pushes an op whose success needs no handling: the kernel posts a
/// completion (with [`IGNORED`]) only if it fails.
///
/// # Safety
/// As for [`push`].
pub unsafe fn push_ignored(ring: &mut IoUring, entry: squeue::Entry) -> io::Result<()> {
    let entry = entry.user_data(IGNORED).flags(squeue::Flags::SKIP_SUCCESS);
    // SAFETY: the caller guarantees the entry's pointers.
    unsafe { push(ring, &entry) }
}

/// Submits what is queued and waits for at least one completion.
pub fn submit_and_wait(ring: &mut IoUring) -> io::Result<()> {
    submit(ring, 1)
}

fn submit(ring: &mut IoUring, want: usize) -> io::Result<()> {
    match ring.submit_and_wait(want) {
        Ok(_) => Ok(()),
        // A signal, or completions to reap first: go round again.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves up to `out.capacity()` completions into `out` (cleared first), so
/// reaping never allocates.
pub fn reap(ring: &mut IoUring, out: &mut Vec<Completion>) {
    out.clear();
    let cap = out.capacity();
    for cqe in ring.completion() {
        out.push((cqe.user_data(), cqe.result(), cqe.flags()));
        if out.len() == cap {
            break;
        }
    }
}

/// Completions per submission entry of a worker's ring.
pub const COMPLETIONS_PER_ENTRY: u32 = 4;
/// Bytes of the worker's address space per submission entry of its ring:
/// the entry (64) and its index in the submission array (4).
pub const SUBMISSION_BYTES: usize = size_of::<squeue::Entry>() + size_of::<u32>();
/// Bytes of the worker's address space per completion entry.
pub const COMPLETION_BYTES: usize = size_of::<io_uring::cqueue::Entry>();

/// The address space a ring of `entries` takes once mapped (its two
/// mappings, their headers and the rounding up to pages within two pages).
pub fn ring_bytes(entries: u32) -> usize {
    let completions = entries.saturating_mul(COMPLETIONS_PER_ENTRY) as usize;
    entries as usize * SUBMISSION_BYTES + completions * COMPLETION_BYTES + 2 * 4096
}

/// The memory a worker's io_uring takes that the kernel may count against
/// `RLIMIT_MEMLOCK` (see [`crate::backend::kernel_counts_rings_as_locked`]):
/// its ring of `entries` and the ring of its `recv_buffers` provided
/// buffers, each rounded up to pages, and a page to spare. Measured on
/// Linux 6.18 with the defaults (4,096 and 4,096): a worker starts under a
/// limit of 600 KiB and not under 580; this says 604 KiB.
pub fn locked_bytes(entries: u32, recv_buffers: u16) -> u64 {
    const PAGE: usize = 4096;
    let buffer_ring = (usize::from(recv_buffers) * size_of::<io_uring::types::BufRingEntry>()).div_ceil(PAGE) * PAGE;
    (ring_bytes(entries) + buffer_ring + PAGE) as u64
}

/// A worker's ring: `entries` submissions, four times as many completions,
/// each clamped to the kernel's most (32,768 and 65,536): past those
/// `io_uring_setup` fails (`EINVAL`) unless asked to clamp, so that
/// `entries` above 16,384 failed every worker at start (until 2026-12-07).
pub fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq_entries = entries.saturating_mul(COMPLETIONS_PER_ENTRY);
    // Defer task work to our own submit_and_wait (kernel 6.1+): completions are
    // produced in our loop turn, not by interrupting it.
    let fast = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all()
        .setup_clamp()
        .setup_cqsize(cq_entries)
        .build(entries);
    match fast {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_submit_all().setup_clamp().setup_cqsize(cq_entries).build(entries)
        }
        ring => ring,
    }
}

/// Whether multishot receives on `ring` may be bundles (several buffers per
/// completion). The feature bit is there since Linux 6.10, but before 6.16
/// a bundle could append a second receive after a part-filled buffer, so
/// the bytes per buffer could not be told from the total ("io_uring/net:
/// only retry recv bundle for a full transfer"): older kernels keep one
/// buffer per completion.
pub fn recv_bundles(ring: &IoUring) -> bool {
    ring.params().is_feature_recvsend_bundle() && crate::sys::kernel_release().is_some_and(|version| version >= (6, 16))
}

/// Buffers one bundle completion may fill at most, where the kernel can cap
/// it ([`recv_bundle_cap`]).
const BUNDLE_CAP_BUFFERS: u32 = 8;

/// What one completion of a multishot bundle receive may carry, in bytes,
/// for buffers of `buffer_size`; `None` where the kernel takes no cap. The
/// cap (`len` of a multishot receive, Linux 6.17: "io_uring/net: allow
/// multishot receive per-invocation cap") bounds what a receive reads ahead
/// of a connection that pauses: uncapped, one completion took all its
/// socket held (64 buffers for a 256 KB pipeline), and hundreds of such
/// connections at once held the ring, short for everyone else until they
/// took their input up.
/// Before 6.17 a multishot receive with a `len` fails (`EINVAL`).
pub fn recv_bundle_cap(buffer_size: u32) -> Option<u32> {
    let capped = crate::sys::kernel_release().is_some_and(|version| version >= (6, 17));
    capped.then(|| buffer_size.saturating_mul(BUNDLE_CAP_BUFFERS))
}

/// Where `len` sits in an `io_uring_sqe` (<linux/io_uring.h>).
const SQE_LEN_OFFSET: usize = 24;
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64, "an Entry is the kernel's io_uring_sqe");

/// Where `ioprio` sits in an `io_uring_sqe`: a receive's own flags.
const SQE_IOPRIO_OFFSET: usize = 2;
/// `IORING_RECVSEND_POLL_FIRST` (<linux/io_uring.h>; the crate keeps its
/// constants private).
const RECVSEND_POLL_FIRST: u16 = 1;

/// A receive `entry` that waits for input before it takes a buffer
/// (`IORING_RECVSEND_POLL_FIRST`): armed on an empty socket while the ring
/// of buffers is empty, it waits for its client rather than failing with
/// `ENOBUFS` at once (the kernel picks the buffer before it reads).
pub fn poll_first(mut entry: squeue::Entry) -> squeue::Entry {
    let field = std::ptr::addr_of_mut!(entry).cast::<u8>().wrapping_add(SQE_IOPRIO_OFFSET).cast::<u16>();
    // SAFETY: as in `with_len`: `ioprio` is the u16 at byte 2 of the
    // kernel's `io_uring_sqe`, 2-aligned in the 8-aligned entry we own here.
    unsafe { *field |= RECVSEND_POLL_FIRST };
    entry
}

/// `entry` with its `len` set: the crate's builders leave it 0 where the
/// kernel once required that (a multishot receive's cap, above).
pub fn with_len(mut entry: squeue::Entry, len: u32) -> squeue::Entry {
    let field = std::ptr::addr_of_mut!(entry).cast::<u8>().wrapping_add(SQE_LEN_OFFSET).cast::<u32>();
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (asserted above), whose `len` is the u32 at byte 24, so
    // 4-aligned in the 8-aligned entry we own here.
    unsafe { *field = len };
    entry
}
