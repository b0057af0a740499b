//! The message buffer both ends send and receive through (a ring's or a
//! direct call's): its header, its payload and its `SCM_RIGHTS` fds.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{Control, Tag, CONTROL_LEN, FD_SIZE, MAX_FDS, MAX_TEXT, PAYLOAD_LEN};

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
