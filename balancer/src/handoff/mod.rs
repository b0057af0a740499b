//! The `rr` hand-off: connections the master accepted, in its custody until
//! a worker acknowledges them. [`lanes`] keeps the books, free of I/O.

pub mod lanes;

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{recv, MsgFlags};

pub use lanes::{Lane, Sent};

/// Reads one acknowledgement a dead worker left in its channel, without
/// waiting; `None` when there is none. For [`Lane::finish_gone`], the one
/// read the master makes outside its event loop: the worker is gone, so what
/// its socket holds is all there will ever be.
pub fn read_leftover_ack(channel: BorrowedFd<'_>, buffer: &mut [u8]) -> Option<usize> {
    recv(channel.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT).ok()
}
