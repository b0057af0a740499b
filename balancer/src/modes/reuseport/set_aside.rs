//! A retired slot's listener, set aside: out of the group's steering, kept
//! by the master until no process of its worker will accept there, then
//! closed by the master, its last holder, without losing a client.
//!
//! Before 2026-12-07 the master let its copy go at the scale-down and the
//! retiring worker's close was the last: a worker stopped or killed before
//! it closed left the close to its death, unfiltered (a handshake
//! completing then is reset), and on io_uring its armed accepts took
//! queued connections into the dying ring (reset); what the kernel's hash
//! sent a stopped one waited for its kill, `--shutdown-timeout` later.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use ringmaster_engine::detach_filter;

use super::take::take_queued;
use crate::reactor::sys::stop_listening;

/// A listener set aside, and since when.
#[derive(Debug)]
pub(super) struct SetAside {
    pub(super) listener: OwnedFd,
    pub(super) since: Instant,
}

/// What letting go of a set-aside listener came to.
#[derive(Debug, Default)]
pub struct LetGo {
    /// Connections that waited there, taken for the master to hand on.
    pub taken: u32,
    /// What went wrong on the way, if anything (the listener is let go all
    /// the same): the handshakes could not be stopped first, a take found
    /// the master out of descriptors (the rest moves to the group, or is
    /// reset, as the listener is shut), or the shutdown failed.
    pub error: Option<io::Error>,
}

/// Lets go of `set_aside`, once no handshake completes there (its SYN
/// filter, `Balance::stop_set_aside_handshakes`, then the wait for the
/// packets in flight the master makes off its loop, `master/in_flight.rs`)
/// or its filter could not be put on: what waits is taken into `out` (each
/// without the filter it may have inherited), and the listener is shut for
/// every holder (`SHUT_RD`: a process of its worker that stands still holds
/// it too), then closed. The kernel moves the handshakes begun there to the
/// group as their last ACK comes again (`net.ipv4.tcp_migrate_req`).
pub(super) fn let_go_after_wait(set_aside: SetAside, out: &mut Vec<OwnedFd>) -> LetGo {
    let listener = set_aside.listener;
    let mut result = LetGo::default();
    let first = out.len();
    let take = take_queued(listener.as_fd(), u32::MAX, out);
    for connection in &out[first..] {
        detach_filter(connection.as_fd());
    }
    result.taken = take.taken;
    if let Some(e) = take.starved {
        result.error = Some(io::Error::new(e.kind(), format!("cannot take all that waits: {e}")));
    }
    if let Err(e) = stop_listening(listener.as_raw_fd()) {
        result.error = Some(io::Error::new(e.kind(), format!("cannot shut it: {e}")));
    }
    result
}
