//! A connection's socket as the io_uring driver names it in its ops: a
//! descriptor in the process's table, or an index in the ring's own table
//! of registered files (a direct descriptor).
//!
//! The ring's accepts (`shared`, `reuseport`) put their connections in the
//! ring's table: an op on a direct descriptor skips the lookup of the file
//! behind a descriptor number (`fget`/`fput` on every send and receive), and
//! the connection takes no place in the process's table. Connections handed
//! over by the master, or taken by the tick's plain `accept`, stay plain, and
//! so do the ring's accepts for a handler that asks for its clients'
//! addresses (`Handler::wants_peer_addr`): only a plain one can be named.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};

use io_uring::types::{Fd, Fixed};
use io_uring::{opcode, squeue, Submitter};

/// A connection's socket.
#[derive(Debug)]
pub(super) enum RingSocket {
    /// A descriptor in the process's table.
    Plain(OwnedFd),
    /// An index in the ring's table of registered files.
    Direct(u32),
}

impl RingSocket {
    /// The fd field of an op on this socket; the op must also carry [`RingSocket::flags`].
    pub(super) fn fd(&self) -> Fd {
        match self {
            RingSocket::Plain(fd) => Fd(fd.as_raw_fd()),
            RingSocket::Direct(index) => Fd(*index as i32),
        }
    }

    /// The descriptor, when it is one in the process's table.
    pub(super) fn plain(&self) -> Option<BorrowedFd<'_>> {
        match self {
            RingSocket::Plain(fd) => Some(fd.as_fd()),
            RingSocket::Direct(_) => None,
        }
    }

    /// The flags an op on this socket carries: `FIXED_FILE` says its fd
    /// field is an index in the ring's table.
    pub(super) fn flags(&self) -> squeue::Flags {
        match self {
            RingSocket::Plain(_) => squeue::Flags::empty(),
            RingSocket::Direct(_) => squeue::Flags::FIXED_FILE,
        }
    }

    /// How many bytes written to the socket its peer has not acknowledged
    /// (`SIOCOUTQ`): a plain descriptor's count now (`None` when the kernel
    /// will not say), or for a direct descriptor, which has no number for
    /// the ioctl, the ring op that asks (`SOCKET_URING_OP_SIOCOUTQ`, Linux
    /// 6.7; an older kernel fails it), to be pushed with `user_data`.
    pub(super) fn ask_unacknowledged(&self, user_data: u64) -> SocketCount {
        match self {
            RingSocket::Plain(fd) => SocketCount::Now(crate::sys::socket::unacknowledged(fd.as_fd()).ok()),
            RingSocket::Direct(index) => SocketCount::Ask(
                opcode::UringCmd16::new(Fixed(*index), SOCKET_URING_OP_SIOCOUTQ)
                    .build()
                    .flags(squeue::Flags::FIXED_FILE)
                    .user_data(user_data),
            ),
        }
    }

    /// The op that closes the socket; the ring owns a plain descriptor from here.
    pub(super) fn into_close(self) -> squeue::Entry {
        match self {
            RingSocket::Plain(fd) => opcode::Close::new(Fd(fd.into_raw_fd())).build(),
            RingSocket::Direct(index) => opcode::Close::new(Fixed(index)).build(),
        }
    }
}

/// `SOCKET_URING_OP_SIOCOUTQ` (<linux/io_uring.h>, Linux 6.7): the ring's
/// `SIOCOUTQ`, whose completion's result is the count.
const SOCKET_URING_OP_SIOCOUTQ: u32 = 1;

/// A count of a socket's bytes, now or through the ring
/// ([`RingSocket::ask_unacknowledged`]).
pub(super) enum SocketCount {
    /// Known now: `None` when the kernel will not say.
    Now(Option<u32>),
    /// To be asked through the ring: its answer comes as a completion.
    Ask(squeue::Entry),
}

/// Registers an empty table of direct descriptors for the ring's accepts
/// and returns its size; `None` when the kernel refuses (older than 5.19,
/// or short of memory): the accepts then make plain descriptors, which only
/// cost more per op.
///
/// The table is as large as the worker's connection limit or its open-file
/// limit, whichever is lower (the kernel refuses a table larger than the
/// open-file limit). The worker never arms more accepts than the table has
/// free entries: an accept into a full table fails with `ENFILE` only after
/// it has taken the connection off the queue, and the kernel then closes it
/// unanswered.
pub(super) fn register_table(submitter: &Submitter<'_>, max_conns: usize) -> Option<u32> {
    let fd_limit = crate::sys::fd_limit().ok()?;
    let size = fd_limit.min(max_conns as u64).min(u64::from(u32::MAX)) as u32;
    submitter.register_files_sparse(size).ok().map(|()| size)
}
