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

mod acks;
mod direct;
mod from_worker;
mod message;

pub use acks::{Ack, Acks, MAX_ACKS};
pub use direct::{channel_pair, recv_blocking, recv_nonblocking, send_blocking};
pub use from_worker::{decode_text, send_text, send_wake};
pub use message::{Message, Received};

use std::os::fd::RawFd;

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

const FD_SIZE: usize = std::mem::size_of::<RawFd>();
/// `CMSG_SPACE(MAX_FDS * 4)`: a 16-byte cmsghdr plus the fds, 8-aligned.
const CONTROL_LEN: usize = (16 + MAX_FDS * FD_SIZE).next_multiple_of(8);

#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// Bytes of the longest message a worker sends the master.
pub const WORKER_MESSAGE_MAX: usize = 1 + MAX_WORKER_TEXT;

#[cfg(test)]
mod tests;
