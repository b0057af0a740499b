//! The channel's socket pair, and a [`Message`] sent and received with
//! direct calls, for callers without a ring.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{Message, Received, Tag};

/// A connected `SOCK_SEQPACKET` pair: one end for the master, one for a worker.
pub fn channel_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both fds are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `tag` and `fds` with a blocking `sendmsg` (for callers without a ring).
pub fn send_blocking(channel: BorrowedFd<'_>, message: &mut Message, tag: Tag, fds: &[RawFd]) -> io::Result<()> {
    let header = message.prepare_send(tag, fds);
    loop {
        // SAFETY: `header` points into `message`, alive and unmoved for the call.
        let sent = unsafe { libc::sendmsg(channel.as_raw_fd(), header, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(());
        }
        // A signal handled meanwhile (without SA_RESTART) sent nothing: again.
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receives one message without waiting: `Ok(None)` when none is there,
/// else the message's length (take its fds with [`Message::take_received`]);
/// `Ok(Some(0))` is the end of the stream when [`Message::is_end_of_stream`]
/// says so, else a message of no bytes, whose fds must still be taken.
pub fn recv_nonblocking(channel: BorrowedFd<'_>, message: &mut Message) -> io::Result<Option<usize>> {
    let header = message.prepare_recv();
    loop {
        // SAFETY: `header` points into `message`, alive and unmoved for the call.
        let len = unsafe { libc::recvmsg(channel.as_raw_fd(), header, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
        if len >= 0 {
            return Ok(Some(len as usize));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(error),
        }
    }
}

/// Receives one message with a blocking `recvmsg`; `Ok(None)` at end of stream.
pub fn recv_blocking(
    channel: BorrowedFd<'_>,
    message: &mut Message,
    out: &mut impl FnMut(OwnedFd),
) -> io::Result<Option<Received>> {
    let len = loop {
        let header = message.prepare_recv();
        // SAFETY: `header` points into `message`, alive and unmoved for the call.
        let len = unsafe { libc::recvmsg(channel.as_raw_fd(), header, libc::MSG_CMSG_CLOEXEC) };
        if len >= 0 {
            break len;
        }
        // A signal handled meanwhile (without SA_RESTART) took nothing: again.
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    if message.is_end_of_stream(len as usize) {
        return Ok(None);
    }
    // SAFETY: one completed recvmsg into the prepared header, with its length.
    Ok(Some(unsafe { message.take_received(len as usize, out) }))
}
