//! The three ring moves the worker and the master both make: push an entry
//! (submitting first when the queue is full), wait for completions, and copy
//! a batch of completions out so handlers may submit while they run.

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
