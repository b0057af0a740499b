//! The master-to-worker channel's wire format: one `SOCK_SEQPACKET` message
//! per batch, a tag byte and an fd count, and up to [`MAX_FDS`] connections as
//! `SCM_RIGHTS`. Both the master (sending through its ring) and the worker
//! (receiving through its ring) use [`Message`], so the format lives here only.
//!
//! A `Connections` message says how many fds it carries. The worker settles
//! every such message exactly once, with one [`Ack`] whatever it got: how many
//! fds arrived (fewer when the kernel could not install them all, `MSG_CTRUNC`,
//! because the worker is at its open-file limit) and how many of those it
//! adopted (fewer when it is full). The fds arrive and are adopted in order, so
//! both are prefixes of the batch. The acks do not travel on the channel: the
//! worker publishes them in its shared stats slot (`shared_acks.rs`), the
//! acks of one loop turn together ([`Acks`], up to [`MAX_ACKS`]), and sends
//! a one-byte wake-up ([`send_wake`]) only when the master asked for one,
//! waiting for them. Until a batch is settled the master keeps its copies:
//! it closes the adopted prefix and hands the rest to another worker, and a
//! worker that dies with the batch still in its socket (or in flight) loses
//! nothing either.
//!
//! Lines of text travel both ways, as Node's `worker.send()` and
//! `process.send()` do: a `Text` message from the master carries up to
//! [`MAX_TEXT`] bytes for the worker's handler, and a worker sends up to
//! [`MAX_WORKER_TEXT`] to the master with [`send_text`] (`M` and the bytes,
//! beside its acks).

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
    /// A line for the worker's handler (`Handler::on_message`); no fds.
    Text = b'T',
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        match byte {
            b'C' => Some(Tag::Connections),
            b'D' => Some(Tag::Drain),
            b'T' => Some(Tag::Text),
            _ => None,
        }
    }
}

/// Bytes of a message's header: the tag and a little-endian `u16` count (of
/// fds, or of the text's bytes that follow).
const PAYLOAD_LEN: usize = 3;

/// Longest line of text a message from the master carries.
pub const MAX_TEXT: usize = 1024;

/// Longest line of text a worker sends the master: one of the master's small
/// receive buffers holds the whole message.
pub const MAX_WORKER_TEXT: usize = 255;

/// The tag of a worker's line of text to the master.
const WORKER_TEXT: u8 = b'M';
/// The worker's wake-up for a master waiting for acks.
const WAKE: u8 = b'W';

/// The worker's answer to one `Connections` message (worker -> master): of
/// the batch's fds, the first `received` reached the worker and the first
/// `adopted` of those are its connections now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    /// Fds that reached the worker (the rest were dropped by the kernel).
    pub received: u16,
    /// Fds the worker took; the rest it closed without touching the connection.
    pub adopted: u16,
}

/// Most batches one [`Acks`] holds: a worker publishes them once it is
/// full. No more than the shared acks' ring, so one publish never laps itself.
pub const MAX_ACKS: usize = 8;

/// The acks of the batches a worker took in one loop turn, in the order the
/// batches were sent, published together at the turn's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acks {
    list: [Ack; MAX_ACKS],
    len: usize,
}

impl Acks {
    /// No acks yet.
    pub const fn new() -> Acks {
        Acks { list: [Ack { received: 0, adopted: 0 }; MAX_ACKS], len: 0 }
    }

    /// Adds the ack of the next batch; false (and nothing added) when full:
    /// publish them first.
    pub fn push(&mut self, ack: Ack) -> bool {
        if self.len == MAX_ACKS {
            return false;
        }
        self.list[self.len] = ack;
        self.len += 1;
        true
    }

    /// The acks, oldest batch first.
    pub fn as_slice(&self) -> &[Ack] {
        &self.list[..self.len]
    }

    /// True when there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the acks (once published).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

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
    payload: [u8; PAYLOAD_LEN + MAX_TEXT],
    control: Control,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("tag", &self.payload[0]).finish_non_exhaustive()
    }
}

impl Message {
    /// A boxed message buffer (its pointers are set when it is prepared).
    pub fn new() -> Box<Message> {
        // SAFETY: msghdr and iovec are plain C structs for which all-zero is valid.
        let (header, iov) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Box::new(Message { header, iov, payload: [0; PAYLOAD_LEN + MAX_TEXT], control: Control([0; CONTROL_LEN]) })
    }

    /// Fills the message with `tag` and `fds`; returns the header to pass to `sendmsg`.
    ///
    /// The fds stay owned by the caller, who closes them once the send completes.
    pub fn prepare_send(&mut self, tag: Tag, fds: &[RawFd]) -> *const libc::msghdr {
        assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} fds per message");
        let [c0, c1] = (fds.len() as u16).to_le_bytes();
        self.payload[..PAYLOAD_LEN].copy_from_slice(&[tag as u8, c0, c1]);
        self.point_at_self(PAYLOAD_LEN);
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

    /// Fills the message with a line of text for the worker's handler (at
    /// most [`MAX_TEXT`] bytes: longer text is cut there); returns the header
    /// to pass to `sendmsg`.
    pub fn prepare_send_text(&mut self, text: &[u8]) -> *const libc::msghdr {
        let text = &text[..text.len().min(MAX_TEXT)];
        let [c0, c1] = (text.len() as u16).to_le_bytes();
        self.payload[..PAYLOAD_LEN].copy_from_slice(&[Tag::Text as u8, c0, c1]);
        self.payload[PAYLOAD_LEN..PAYLOAD_LEN + text.len()].copy_from_slice(text);
        self.point_at_self(PAYLOAD_LEN + text.len());
        self.header.msg_controllen = 0;
        self.header.msg_control = std::ptr::null_mut();
        &self.header
    }

    /// Readies the buffer for one `recvmsg`; returns the header to pass to it.
    pub fn prepare_recv(&mut self) -> *mut libc::msghdr {
        self.payload[..PAYLOAD_LEN].fill(0);
        self.point_at_self(PAYLOAD_LEN + MAX_TEXT);
        self.header.msg_controllen = CONTROL_LEN;
        &mut self.header
    }

    /// The text of the `Text` message just received as `received` (empty for
    /// any other message).
    pub fn text(&self, received: &Received) -> &[u8] {
        match received.tag {
            Some(Tag::Text) => &self.payload[PAYLOAD_LEN..PAYLOAD_LEN + received.text_len],
            _ => &[],
        }
    }

    /// True when a receive of `len` bytes into this buffer met the end of
    /// the stream (the master gone), not a message: no bytes and no control
    /// data. A message of no bytes that carries fds is a message (a broken
    /// one) whose fds must be taken, or they stay open for good.
    pub fn is_end_of_stream(&self, len: usize) -> bool {
        len == 0 && self.header.msg_controllen == 0 && self.header.msg_flags & libc::MSG_CTRUNC == 0
    }

    /// Decodes a message of `len` bytes just received; the fds of a
    /// `Connections` message become owned and go to `out`, any other
    /// message's (no wire format attaches them: a broken sender) are closed
    /// at once and not counted.
    ///
    /// # Safety
    /// Call once per completed `recvmsg` into the header from
    /// [`Message::prepare_recv`], with its result: the fds in the control data
    /// are then new descriptors nothing else owns.
    pub unsafe fn take_received(&mut self, len: usize, out: &mut impl FnMut(OwnedFd)) -> Received {
        let tag = if len >= 1 { Tag::from_byte(self.payload[0]) } else { None };
        let sent =
            if len >= PAYLOAD_LEN { usize::from(u16::from_le_bytes([self.payload[1], self.payload[2]])) } else { 0 };
        let truncated = self.header.msg_flags & libc::MSG_CTRUNC != 0;
        // A text's length is what arrived of it, whatever its header claims.
        let text_len = if tag == Some(Tag::Text) { sent.min(len.saturating_sub(PAYLOAD_LEN)).min(MAX_TEXT) } else { 0 };
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
                    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                    if tag == Some(Tag::Connections) {
                        out(fd);
                        fds += 1;
                    }
                }
            }
            // SAFETY: advancing within the control buffer, as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&self.header, cmsg) };
        }
        Received { tag, sent, fds, truncated, text_len }
    }

    fn point_at_self(&mut self, len: usize) {
        self.iov = libc::iovec { iov_base: self.payload.as_mut_ptr().cast(), iov_len: len };
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
    /// How many fds the sender attached.
    pub sent: usize,
    /// How many fds came with it (a `Connections` message's: any other's are closed).
    pub fds: usize,
    /// Fewer fds arrived than were sent: the kernel could not install the rest
    /// (the receiver is at its open-file limit) and closed them.
    pub truncated: bool,
    /// Bytes of text a `Text` message brought ([`Message::text`]).
    pub text_len: usize,
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

/// Wakes the master, which asked for it while it waited for acks (the acks
/// themselves are in the shared slot: `shared_acks.rs`), with one message.
///
/// A direct `send(2)`, not a ring op, that never waits: a channel too full
/// to take it holds messages the master has not read yet, which wake it as
/// well, so that counts as sent. A master that is gone makes it fail
/// (`EPIPE`).
pub fn send_wake(channel: BorrowedFd<'_>) -> io::Result<()> {
    match send_bytes(channel, &[WAKE]) {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
        sent => sent,
    }
}

/// Sends a line of text to the master (at most [`MAX_WORKER_TEXT`] bytes:
/// longer text is cut there) without waiting: `WouldBlock` when the channel
/// is full of lines the master has not read (a stopped or wedged master),
/// and the line is dropped, since a worker's loop must not stop serving for
/// its master.
pub fn send_text(channel: BorrowedFd<'_>, text: &[u8]) -> io::Result<()> {
    let text = &text[..text.len().min(MAX_WORKER_TEXT)];
    let mut bytes = [0u8; WORKER_MESSAGE_MAX];
    bytes[0] = WORKER_TEXT;
    bytes[1..=text.len()].copy_from_slice(text);
    send_bytes(channel, &bytes[..=text.len()])
}

/// One message of `bytes`, with a direct `send(2)` that does not wait for
/// room (`MSG_DONTWAIT`): the caller is the worker's loop.
fn send_bytes(channel: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: sending `bytes`, a live slice, on a valid socket.
        let sent = unsafe {
            libc::send(channel.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        };
        if sent >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The text of a worker's message to the master, if `bytes` is one.
pub fn decode_text(bytes: &[u8]) -> Option<&[u8]> {
    match bytes {
        [WORKER_TEXT, text @ ..] => Some(text),
        _ => None,
    }
}

/// Bytes of the longest message a worker sends the master.
pub const WORKER_MESSAGE_MAX: usize = 1 + MAX_WORKER_TEXT;

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

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
