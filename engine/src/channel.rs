//! The master-to-worker channel's wire format: one `SOCK_SEQPACKET` message
//! per batch, a one-byte tag, and up to [`MAX_FDS`] connections as
//! `SCM_RIGHTS`. Both the master (sending through its ring) and the worker
//! (receiving through its ring) use [`Message`], so the format lives here only.
//!
//! The worker answers every message that carried connections with one
//! [`ACK`] message once it has adopted them. Until then the master keeps its
//! copies of those fds: a worker that dies with the batch still in its socket
//! (or in flight) loses nothing, the master hands the batch to another worker.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most fds one message carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// What a message asks of the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// Serve the connections attached.
    Connections = b'C',
    /// Stop taking connections, finish the ones held, exit.
    Drain = b'D',
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        match byte {
            b'C' => Some(Tag::Connections),
            b'D' => Some(Tag::Drain),
            _ => None,
        }
    }
}

/// The worker's acknowledgement of one batch of connections (worker -> master).
pub static ACK: [u8; 1] = [b'A'];

const FD_SIZE: usize = std::mem::size_of::<RawFd>();
/// `CMSG_SPACE(MAX_FDS * 4)`: a 16-byte cmsghdr plus the fds, 8-aligned.
const CONTROL_LEN: usize = (16 + MAX_FDS * FD_SIZE).next_multiple_of(8);

#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// A message buffer with a stable address, for `sendmsg`/`recvmsg` through a ring.
///
/// It points into itself, so it only lives boxed (see [`Message::new`]).
pub struct Message {
    header: libc::msghdr,
    iov: libc::iovec,
    tag: [u8; 1],
    control: Control,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("tag", &self.tag[0]).finish_non_exhaustive()
    }
}

impl Message {
    /// A boxed message buffer (its pointers are set when it is prepared).
    pub fn new() -> Box<Message> {
        // SAFETY: msghdr and iovec are plain C structs for which all-zero is valid.
        let (header, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Box::new(Message { header, iov, tag: [0], control: Control([0; CONTROL_LEN]) })
    }

    /// Fills the message with `tag` and `fds`; returns the header to pass to `sendmsg`.
    ///
    /// The fds stay owned by the caller, who closes them once the send completes.
    pub fn prepare_send(&mut self, tag: Tag, fds: &[RawFd]) -> *const libc::msghdr {
        assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} fds per message");
        self.tag[0] = tag as u8;
        self.point_at_self();
        if fds.is_empty() {
            self.header.msg_controllen = 0;
            self.header.msg_control = std::ptr::null_mut();
            return &self.header;
        }
        let data_len = fds.len() * FD_SIZE;
        // SAFETY: CMSG_* only compute sizes and offsets inside `control`, which is
        // 8-aligned and CONTROL_LEN >= CMSG_SPACE(MAX_FDS * 4) bytes long; the header
        // fields written are in bounds of the first cmsghdr.
        unsafe {
            self.header.msg_controllen = libc::CMSG_SPACE(data_len as u32) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&self.header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), data_len);
        }
        &self.header
    }

    /// Readies the buffer for one `recvmsg`; returns the header to pass to it.
    pub fn prepare_recv(&mut self) -> *mut libc::msghdr {
        self.tag[0] = 0;
        self.point_at_self();
        self.header.msg_controllen = CONTROL_LEN;
        &mut self.header
    }

    /// Decodes a message of `len` bytes just received; the fds become owned.
    ///
    /// # Safety
    /// Call once per completed `recvmsg` into the header from
    /// [`Message::prepare_recv`], with its result: the fds in the control data
    /// are then new descriptors nothing else owns.
    pub unsafe fn take_received(&mut self, len: usize, out: &mut impl FnMut(OwnedFd)) -> Received {
        let tag = if len >= 1 { Tag::from_byte(self.tag[0]) } else { None };
        let truncated = self.header.msg_flags & libc::MSG_CTRUNC != 0;
        let mut fds = 0;
        // SAFETY: the kernel wrote msg_controllen bytes of cmsgs into `control`;
        // CMSG_FIRSTHDR/NXTHDR stay inside that length.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&self.header) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is non-null and inside the control buffer (see above).
            let (level, kind, cmsg_len) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
            if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                // SAFETY: CMSG_LEN(0) is a pure size computation.
                let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
                let count = cmsg_len.saturating_sub(header_len) / FD_SIZE;
                // SAFETY: the data of an SCM_RIGHTS cmsg holds `count` fds.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
                for i in 0..count {
                    // SAFETY: `i < count`, within the cmsg; unaligned read because
                    // CMSG_DATA only promises byte alignment in general.
                    let raw = unsafe { data.add(i).read_unaligned() };
                    // SAFETY: SCM_RIGHTS installed `raw` as a new fd in this process.
                    out(unsafe { OwnedFd::from_raw_fd(raw) });
                    fds += 1;
                }
            }
            // SAFETY: advancing within the control buffer, as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&self.header, cmsg) };
        }
        Received { tag, fds, truncated }
    }

    fn point_at_self(&mut self) {
        self.iov = libc::iovec { iov_base: self.tag.as_mut_ptr().cast(), iov_len: 1 };
        self.header.msg_name = std::ptr::null_mut();
        self.header.msg_namelen = 0;
        self.header.msg_iov = &mut self.iov;
        self.header.msg_iovlen = 1;
        self.header.msg_control = self.control.0.as_mut_ptr().cast();
        self.header.msg_flags = 0;
    }
}

/// What one received message held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The message's tag, `None` for an empty or unknown message.
    pub tag: Option<Tag>,
    /// How many fds came with it.
    pub fds: usize,
    /// The sender attached more fds than fit (they were closed by the kernel).
    pub truncated: bool,
}

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
    // SAFETY: `header` points into `message`, alive and unmoved for the call.
    let sent = unsafe { libc::sendmsg(channel.as_raw_fd(), header, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message with a blocking `recvmsg`; `Ok(None)` at end of stream.
pub fn recv_blocking(
    channel: BorrowedFd<'_>,
    message: &mut Message,
    out: &mut impl FnMut(OwnedFd),
) -> io::Result<Option<Received>> {
    let header = message.prepare_recv();
    // SAFETY: `header` points into `message`, alive and unmoved for the call.
    let len = unsafe { libc::recvmsg(channel.as_raw_fd(), header, libc::MSG_CMSG_CLOEXEC) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: one completed recvmsg into the prepared header, with its length.
    Ok(Some(unsafe { message.take_received(len as usize, out) }))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn fds_cross_the_channel_intact() {
        let (master, worker) = channel_pair().expect("socketpair");
        let (a, b) = channel_pair().expect("payload pair");
        let mut out = Message::new();
        send_blocking(master.as_fd(), &mut out, Tag::Connections, &[a.as_raw_fd(), b.as_raw_fd()]).expect("send");
        let mut received = Vec::new();
        let mut inbox = Message::new();
        let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |fd| received.push(fd)).expect("recv");
        assert_eq!(got, Some(Received { tag: Some(Tag::Connections), fds: 2, truncated: false }));
        // The received fds are the same sockets: a byte written on `a` arrives on the copy of `b`.
        // SAFETY: writing one byte from a valid buffer to a valid socket.
        let wrote = unsafe { libc::write(received[0].as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(wrote, 1);
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer from a valid socket.
        let read = unsafe { libc::read(b.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        assert_eq!((read, byte[0]), (1, b'x'));
    }

    #[test]
    fn a_full_batch_fits_and_drain_has_no_fds() {
        let (master, worker) = channel_pair().expect("socketpair");
        let (a, _b) = channel_pair().expect("payload pair");
        let fds = vec![a.as_raw_fd(); MAX_FDS];
        let mut out = Message::new();
        send_blocking(master.as_fd(), &mut out, Tag::Connections, &fds).expect("send full batch");
        send_blocking(master.as_fd(), &mut out, Tag::Drain, &[]).expect("send drain");
        let mut inbox = Message::new();
        let mut count = 0;
        let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| count += 1).expect("recv batch");
        assert_eq!(got.map(|r| (r.fds, r.truncated)), Some((MAX_FDS, false)));
        assert_eq!(count, MAX_FDS);
        let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| count += 1).expect("recv drain");
        assert_eq!(got, Some(Received { tag: Some(Tag::Drain), fds: 0, truncated: false }));
        drop(master);
        assert_eq!(recv_blocking(worker.as_fd(), &mut inbox, &mut |_| {}).expect("eof"), None);
    }
}
