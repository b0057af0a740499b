//! The exit codes by which a worker tells its master that restarting it
//! cannot help: its configuration cannot start here (the kernel refused
//! the address space its limits ask, `RLIMIT_AS` or strict overcommit), or
//! the program could not make its handler.

use crate::error::Error;

/// `EX_CONFIG` (sysexits.h): a worker that cannot start with these limits.
pub const EXIT_CANNOT_START: u8 = 78;

/// `EX_SOFTWARE` (sysexits.h): a worker whose handler could not be made,
/// the program's closure given to `serve` having panicked (a database it
/// cannot open), or whose handler panicked in a method the worker asks as
/// it starts (`fixed_body`, `wants_peer_addr`): restarting it before any
/// worker was ready would fail the same way. Also a worker whose handler
/// panicked as it was dropped, at its exit.
pub const EXIT_NO_HANDLER: u8 = 70;

/// The exit code of a worker that failed with `e`: [`EXIT_CANNOT_START`]
/// when its configuration cannot start, else 1 (a crash like any other,
/// restarted with the back-off).
pub fn worker_exit_code(e: &Error) -> u8 {
    match e {
        Error::Io { source, .. } if ringmaster_engine::is_reservation_refused(source) => EXIT_CANNOT_START,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn only_a_refused_reservation_is_a_worker_that_cannot_start() {
        let crash = Error::io("the uring loop", io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(worker_exit_code(&crash), 1);
        assert_eq!(worker_exit_code(&Error::Config("cannot pin".into())), 1);
    }
}
