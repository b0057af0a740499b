//! Lines of text from a worker's code to its master, as Node's
//! `process.send()`: [`send_to_master`] works anywhere on the worker's loop
//! thread (in `Handler::handle`, in `Handler::on_message`), while the worker
//! runs. The master hands each line to the library user's hook
//! (`Cluster::on_worker_message`) or logs it.
//!
//! The other way, the master's lines reach `Handler::on_message`.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::channel::{send_text, MAX_WORKER_TEXT};

thread_local! {
    /// This thread's worker's own copy of its channel to the master, while
    /// the worker runs (a copy, so it stays valid whatever the loop does with
    /// its end).
    static MASTER: RefCell<Option<OwnedFd>> = const { RefCell::new(None) };
}

/// Sends `text` (at most [`MAX_WORKER_TEXT`] bytes; longer text is cut at the
/// last character that ends within them) to the master as one message.
///
/// It never waits: a worker's loop must go on serving whatever its master
/// does.
///
/// Errors: `NotConnected` when not called from a running worker's thread (the
/// primary process, or a worker without a master), `WouldBlock` when the
/// master has not read the lines already sent and the channel holds no more
/// (a stopped or wedged master; this line is dropped), and the `send(2)`
/// error when the master is gone (`EPIPE`).
pub fn send_to_master(text: &str) -> io::Result<()> {
    MASTER.with_borrow(|master| match master {
        Some(channel) => send_text(channel.as_fd(), within_limit(text).as_bytes()),
        None => Err(io::Error::new(io::ErrorKind::NotConnected, "not in a worker with a master")),
    })
}

/// `text` cut to [`MAX_WORKER_TEXT`] bytes at a character boundary: a cut
/// inside a character reached the master's hook as U+FFFD, a character the
/// worker never sent (until 2026-12-06).
fn within_limit(text: &str) -> &str {
    let mut end = text.len().min(MAX_WORKER_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Makes [`send_to_master`] use a copy of `channel` on this thread until the
/// returned guard drops.
pub(crate) fn attach(channel: BorrowedFd<'_>) -> io::Result<Attached> {
    let copy = channel.try_clone_to_owned()?;
    MASTER.with_borrow_mut(|master| *master = Some(copy));
    Ok(Attached)
}

/// Detaches the thread's worker from [`send_to_master`] when dropped.
pub(crate) struct Attached;

impl Drop for Attached {
    fn drop(&mut self) {
        MASTER.with_borrow_mut(|master| *master = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{channel_pair, decode_text, WORKER_MESSAGE_MAX};
    use std::os::fd::AsRawFd;

    #[test]
    fn only_an_attached_thread_sends() {
        assert_eq!(send_to_master("x").map_err(|e| e.kind()), Err(io::ErrorKind::NotConnected));
        let (master, worker) = channel_pair().expect("socketpair");
        {
            let _attached = attach(worker.as_fd()).expect("attach");
            send_to_master("hits=3").expect("send");
        }
        assert_eq!(send_to_master("x").map_err(|e| e.kind()), Err(io::ErrorKind::NotConnected));
        let mut buf = [0u8; WORKER_MESSAGE_MAX];
        // SAFETY: receiving into a live local buffer of its own length.
        let n = unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        assert_eq!(decode_text(&buf[..n as usize]), Some(&b"hits=3"[..]));
    }

    #[test]
    fn long_text_is_cut_between_characters() {
        let (master, worker) = channel_pair().expect("socketpair");
        let _attached = attach(worker.as_fd()).expect("attach");
        // 2-byte characters: the limit (255) falls inside the 128th.
        let text = "\u{e9}".repeat(200);
        send_to_master(&text).expect("send");
        let mut buf = [0u8; WORKER_MESSAGE_MAX];
        // SAFETY: receiving into a live local buffer of its own length.
        let n = unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        let got = decode_text(&buf[..n as usize]).expect("a line");
        let got = std::str::from_utf8(got).expect("whole characters only");
        assert_eq!(got, "\u{e9}".repeat(MAX_WORKER_TEXT / 2));
    }
}
