//! What a worker sends its master on the channel, with a direct `send(2)`
//! that never waits: wake-ups and lines of text; a line read back.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{MAX_WORKER_TEXT, WAKE, WORKER_MESSAGE_MAX, WORKER_TEXT};

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
