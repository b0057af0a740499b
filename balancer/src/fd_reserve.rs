//! Descriptors the master keeps in reserve for starting processes. At its
//! open-file limit the master holds connections that wait for a worker; if
//! the worker they wait for is gone, its restart needs descriptors of its
//! own (the channel, the duplicates the new process inherits, the pipe that
//! reports a failed exec), and none would come back until a worker took the
//! connections: a deadlock. The reserve is a few duplicates of a descriptor
//! the master keeps anyway. Accepts cannot take their numbers; a start lets
//! them go just before it needs them and takes them back just after (the
//! classic spare-descriptor trick, as libuv does for `EMFILE` on accept),
//! and while the reserve lacks what a start needs, the master accepts no
//! connection, so that the reserve, not an accept, gets what closes free.

use std::os::fd::{BorrowedFd, OwnedFd};

/// Descriptors a start needs at most at once, with some to spare: a worker
/// needs nine (the channel's two ends, four inherited duplicates, `/dev/null`
/// for stdin and the exec-error pipe's two ends) and ten in `reuseport`,
/// whose new slot's listener comes with its first process; an upgrade's new
/// master needs five (its readiness channel's two ends, `/dev/null`, the
/// pipe), as the sockets it is handed keep their numbers rather than being
/// duplicated (`upgrade/launch.rs`). Neither grows with the workers or the
/// `reuseport` slots, so neither does the reserve: one sized by the slots
/// would cost every master a descriptor per slot for good, and its numbers
/// would still have had to lie above every handed one.
pub const RESERVED_FDS: usize = 16;

/// Of the reserve, what a start needs: the rest may be lent, one at a time,
/// to a control or metrics client that comes while the master is at its
/// limit, so that `ctl status` and a scrape still answer then.
const KEPT_FOR_STARTS: usize = 12;

/// The reserve: duplicates of one descriptor.
#[derive(Debug)]
pub struct FdReserve {
    spare: Vec<OwnedFd>,
}

impl FdReserve {
    /// A reserve of [`RESERVED_FDS`] duplicates of `source` (as many as the
    /// limit allows now; [`FdReserve::refill`] takes the rest later).
    pub fn new(source: BorrowedFd<'_>) -> FdReserve {
        let mut reserve = FdReserve { spare: Vec::with_capacity(RESERVED_FDS) };
        reserve.refill(source);
        reserve
    }

    /// Takes back what the reserve lacks, as far as the open-file limit lets
    /// it: called once per loop turn, it costs nothing while the reserve is
    /// full.
    pub fn refill(&mut self, source: BorrowedFd<'_>) {
        while self.spare.len() < RESERVED_FDS {
            match source.try_clone_to_owned() {
                Ok(fd) => self.spare.push(fd),
                Err(_) => return,
            }
        }
    }

    /// Lets the reserve's descriptors go, for a start that comes next; a
    /// [`FdReserve::refill`] after it takes them back.
    pub fn release(&mut self) {
        self.spare.clear();
    }

    /// Lets one spare go, for a client about to be accepted on it; false
    /// (nothing let go) when only what a start needs is left. The client's
    /// close gives the number back to the next [`FdReserve::refill`].
    pub fn lend_one(&mut self) -> bool {
        if self.spare.len() <= KEPT_FOR_STARTS {
            return false;
        }
        self.spare.pop();
        true
    }

    /// True while the reserve holds what a start needs. The master accepts
    /// no connection while it does not: at the open-file limit an accept
    /// would take each number a close gives back before the reserve could.
    pub fn enough_for_a_start(&self) -> bool {
        self.spare.len() >= KEPT_FOR_STARTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn is_let_go_for_a_start_and_taken_back_after() {
        let source = std::fs::File::open("/dev/null").expect("/dev/null");
        let mut reserve = FdReserve::new(source.as_fd());
        assert_eq!(reserve.spare.len(), RESERVED_FDS);
        reserve.release();
        assert!(reserve.spare.is_empty());
        reserve.refill(source.as_fd());
        assert_eq!(reserve.spare.len(), RESERVED_FDS, "taken back after the start");
    }

    #[test]
    fn lends_only_what_starts_do_not_need() {
        let source = std::fs::File::open("/dev/null").expect("/dev/null");
        let mut reserve = FdReserve::new(source.as_fd());
        let lent = std::iter::from_fn(|| reserve.lend_one().then_some(())).count();
        assert_eq!(lent, RESERVED_FDS - KEPT_FOR_STARTS);
        assert_eq!(reserve.spare.len(), KEPT_FOR_STARTS);
        assert!(reserve.enough_for_a_start(), "lending never takes what a start needs");
        reserve.release();
        assert!(!reserve.enough_for_a_start());
    }
}
