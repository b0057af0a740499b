//! Room under `RLIMIT_MEMLOCK` for the workers' io_uring rings.
//!
//! Where the kernel counts rings against it (Linux 6.14 on, and before
//! 5.12) the count is per user, over all its processes, and each new ring
//! must fit under the limit of the process that makes it; a process with
//! `CAP_IPC_LOCK` is not counted. Until 2026-12-06 workers that switched to
//! `--user` lost that capability with the rest, and under the common 8 MiB
//! a worker's rings (about 600 KiB) let 13 workers start: the 14th and every
//! one after failed with `ENOMEM` and was restarted forever. Now such a
//! worker keeps `CAP_IPC_LOCK` alone (`privileges.rs`), and where the master
//! itself may not lock memory (not root) it makes room before it starts
//! them: it raises the limit its workers inherit by what twice their rings
//! need (an upgrade's new workers start while the old ones still hold
//! theirs, and a ring is let go a moment after its process exits), up to
//! the hard limit; short of that, `--backend auto` serves with epoll and
//! `uring` refuses to start.

use std::io;

use ringmaster_engine::backend::kernel_counts_rings_as_locked;
use ringmaster_engine::uring::locked_bytes;
use ringmaster_engine::{exempt_from_locked_memory_limit, EngineConfig};

/// What [`make_room`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Nothing to do: the rings are not counted, or the limit is enough.
    Enough,
    /// The soft limit (and the hard one, where it was lower) was raised.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The limit cannot be raised to what the rings need.
    Short {
        /// The soft limit now (raised to the hard one).
        limit: u64,
        /// What the rings need.
        need: u64,
    },
}

/// What the rings of `workers` workers take, each counted twice, and one
/// more for the master's own (smaller) where it counts too.
pub fn need(workers: usize, engine: &EngineConfig) -> u64 {
    let each = locked_bytes(engine.ring_entries, engine.recv_buffers);
    2 * (workers as u64 + 1) * each
}

/// How many workers' rings fit under `limit`, once each.
pub fn rings_within(limit: u64, engine: &EngineConfig) -> u64 {
    limit / locked_bytes(engine.ring_entries, engine.recv_buffers)
}

/// Whether io_uring rings made by the workers count against the limit:
/// the kernel counts them, and the master may not lock memory (the workers
/// of one that may keep `CAP_IPC_LOCK` when they switch to `--user`).
pub fn workers_counted() -> bool {
    kernel_counts_rings_as_locked() && !exempt_from_locked_memory_limit()
}

/// Makes room for the rings of `workers` io_uring workers where they count
/// (see [`workers_counted`]); [`Room::Enough`] where they do not.
pub fn room_for_workers(workers: usize, engine: &EngineConfig) -> io::Result<Room> {
    if !workers_counted() {
        return Ok(Room::Enough);
    }
    make_room(need(workers, engine))
}

/// Raises this process's `RLIMIT_MEMLOCK`, which its workers inherit, so
/// that `need` bytes fit on top of what it allowed before.
pub fn make_room(need: u64) -> io::Result<Room> {
    let mut limit = get()?;
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= need {
        return Ok(Room::Enough);
    }
    let from = limit.rlim_cur;
    // What the user's other processes lock keeps its share.
    let wanted = from.saturating_add(need);
    let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max.max(wanted) };
    if set(&raised).is_ok() {
        return Ok(Room::Raised { from, to: wanted });
    }
    // Without CAP_SYS_RESOURCE: as far as the hard limit goes.
    limit.rlim_cur = limit.rlim_max.min(wanted);
    set(&limit)?;
    if limit.rlim_cur >= need {
        Ok(Room::Raised { from, to: limit.rlim_cur })
    } else {
        Ok(Room::Short { limit: limit.rlim_cur, need })
    }
}

fn get() -> io::Result<libc::rlimit> {
    crate::rlimit::get(libc::RLIMIT_MEMLOCK)
}

fn set(limit: &libc::rlimit) -> io::Result<()> {
    crate::rlimit::set(libc::RLIMIT_MEMLOCK, limit)
}

/// The line for [`Room::Raised`], for `workers` workers.
pub fn raised_text(workers: usize, from: u64, to: u64) -> String {
    format!(
        "raised RLIMIT_MEMLOCK from {} to {} for the io_uring rings of {workers} {}, which this kernel counts \
         against it (twice each: an upgrade's overlap)",
        mib(from),
        mib(to),
        workers_noun(workers)
    )
}

/// The start of the line for [`Room::Short`], for `workers` workers.
pub fn short_text(workers: usize, limit: u64, need: u64) -> String {
    format!(
        "the io_uring rings of {workers} {} need {} of locked memory and RLIMIT_MEMLOCK is {}, which this \
         process may not raise",
        workers_noun(workers),
        mib(need),
        mib(limit)
    )
}

/// `worker` or `workers`, for `n` of them.
fn workers_noun(n: usize) -> &'static str {
    if n == 1 {
        "worker"
    } else {
        "workers"
    }
}

/// Bytes as `8.0 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_counts_each_ring_twice_and_one_more() {
        let engine = EngineConfig::default();
        let each = locked_bytes(engine.ring_entries, engine.recv_buffers);
        assert_eq!(need(2, &engine), 6 * each);
        assert!((560 << 10..640 << 10).contains(&each), "a default worker's rings: {each} bytes");
    }

    #[test]
    fn a_limit_already_enough_is_left_as_it_is() {
        let before = get().expect("the limit");
        assert_eq!(make_room(0).expect("room"), Room::Enough);
        assert_eq!(get().expect("the limit").rlim_cur, before.rlim_cur);
    }
}
