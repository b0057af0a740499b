//! A reservation the kernel refused at a worker's start: its address space
//! (`RLIMIT_AS`, `ulimit -v`) or strict overcommit cannot take what the
//! limits ask. Told apart from other errors because restarting such a
//! worker cannot help: only other limits can.

use std::fmt;
use std::io;

/// The kernel refused a worker's reservation; the message names what it
/// was for and the limits that sized it.
#[derive(Debug)]
struct ReservationRefused(String);

impl fmt::Display for ReservationRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReservationRefused {}

/// The error for a reservation refused with `e`: what it was for (`what`)
/// and which limits sized it (`sized_by`), so the operator knows what to lower.
pub(crate) fn reservation_refused(e: io::Error, what: &str, sized_by: fmt::Arguments<'_>) -> io::Error {
    let message = format!("cannot reserve address space for its {what} ({sized_by} bytes): {e}");
    io::Error::new(e.kind(), ReservationRefused(message))
}

/// Address space a worker keeps free past its reservations, checked under
/// a finite `RLIMIT_AS` ([`keep_headroom`]), for what it allocates at start
/// that no limit sizes and that aborts the worker when refused: its
/// channel message and late-close list (about 20 KiB), on epoll its event
/// batch and 64 KiB receive buffer, and the 128 KiB the allocator adds to
/// each growth of its heap: under 160 KiB (measured). Without it, a limit
/// that let the reservations through but not these aborted the worker
/// (`SIGABRT`), which the master restarted forever.
pub(crate) const HEADROOM: usize = 256 << 10;

/// Under a finite `RLIMIT_AS`, checks that [`HEADROOM`] is left past the
/// reservations made so far, the last for its `last` (named in the error,
/// which says how far the worker got), so that the allocations that follow
/// find room.
pub(crate) fn keep_headroom(last: &str) -> io::Result<()> {
    left_under_limit(HEADROOM).map_err(|e| {
        let what = format!("start-up allocations after its {last}");
        reservation_refused(e, &what, format_args!("a headroom of {HEADROOM}"))
    })
}

/// `e`, an error of the kernel's mapping of `bytes` for the worker (its
/// io_uring ring), as a refused reservation when it is `ENOMEM` and the
/// address space is what lacks: `bytes` are not left under `RLIMIT_AS`.
/// Else `e` as it is: the kernel's own memory (a cgroup's) or locked
/// memory can fail the same way, and a restart may find them.
pub(crate) fn mapping_refused(e: io::Error, bytes: usize, what: &str, sized_by: fmt::Arguments<'_>) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    match left_under_limit(bytes) {
        Ok(()) => e,
        Err(lacking) => reservation_refused(lacking, what, sized_by),
    }
}

/// The finite `RLIMIT_AS`, in bytes, when it leaves no room for `bytes`
/// more (tried as [`left_under_limit`] tries them): the master's io_uring
/// probe names it when its ring's set-up fails with `ENOMEM`.
pub(crate) fn address_space_lacks(bytes: usize) -> Option<u64> {
    let limit = crate::sys::address_space_limit()?;
    left_under_limit(bytes).is_err().then_some(limit)
}

/// Whether `bytes` of address space are left under a finite `RLIMIT_AS`,
/// tried by mapping them, inaccessible and never backed (they count against
/// the limit as any mapping does), and unmapping them again. The error
/// says which limit left too little.
fn left_under_limit(bytes: usize) -> io::Result<()> {
    let Some(limit) = crate::sys::address_space_limit() else { return Ok(()) };
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh mapping at an address the kernel picks, touched by
    // nothing and unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_NONE, flags, -1, 0) };
    if addr == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{e}; RLIMIT_AS is {limit} bytes")));
    }
    // SAFETY: unmaps exactly the mapping made above, which nothing uses.
    unsafe { libc::munmap(addr, bytes) };
    Ok(())
}

/// `e` is a reservation the kernel refused at start (see the module).
pub fn is_reservation_refused(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<ReservationRefused>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reservation_is_told_apart_and_names_its_limits() {
        let e = reservation_refused(
            io::Error::from_raw_os_error(libc::ENOMEM),
            "header buffers",
            format_args!("--max-conns 2 x --max-header 3"),
        );
        assert!(is_reservation_refused(&e));
        assert!(e.to_string().contains("--max-conns 2 x --max-header 3 bytes"), "{e}");
        assert!(!is_reservation_refused(&io::Error::from_raw_os_error(libc::ENOMEM)));
    }

    #[test]
    fn a_mapping_is_refused_for_address_space_only_when_it_lacks() {
        let refuse = |errno| {
            let e = io::Error::from_raw_os_error(errno);
            is_reservation_refused(&mapping_refused(e, 4096, "ring", format_args!("1 x 4096")))
        };
        assert!(!refuse(libc::EPERM), "not a want of memory");
        if crate::sys::address_space_limit().is_none() {
            assert!(!refuse(libc::ENOMEM), "no address-space limit: the memory lacked is another");
            assert!(keep_headroom("test").is_ok());
        }
    }
}
