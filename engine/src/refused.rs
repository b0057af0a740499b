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
}
