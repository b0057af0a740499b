//! What waits in a lane for its worker: connections queued, lines for its
//! handler (bounded), and the drain asked for.

use std::os::fd::OwnedFd;

use super::{Lane, MOST_TEXT_QUEUED};

impl Lane {
    /// Queues an accepted connection for this lane's worker.
    pub fn enqueue(&mut self, fd: OwnedFd) {
        self.pending.push_back(fd);
    }

    /// Hands back the connections queued here and not yet sent (the worker
    /// stopped taking them), to route elsewhere.
    pub fn take_queued(&mut self, out: &mut Vec<OwnedFd>) {
        out.extend(self.pending.drain(..));
    }

    /// Queues a line for the worker's handler; false (nothing queued) when
    /// the lane takes nothing new (no worker, or one that is draining or
    /// gone) or already holds [`MOST_TEXT_QUEUED`] bytes of lines.
    pub fn enqueue_text(&mut self, text: &[u8]) -> bool {
        if !self.is_routable() || self.texts_full(text.len()) {
            return false;
        }
        self.text_bytes += text.len();
        self.texts.push_back(text.into());
        true
    }

    /// True when a line of `len` bytes would take the lines the worker has
    /// not taken past [`MOST_TEXT_QUEUED`].
    fn texts_full(&self, len: usize) -> bool {
        self.text_bytes + len > MOST_TEXT_QUEUED
    }

    /// Whether a line of `len` bytes is refused for want of room for the
    /// first time since the worker last took one: when to say so.
    pub fn first_text_refusal(&mut self, len: usize) -> bool {
        let first = self.is_routable() && self.texts_full(len) && !self.texts_refusal_said;
        self.texts_refusal_said |= first;
        first
    }

    /// Asks the worker to drain once every queued connection is sent; the
    /// channel is closed after that message, which the worker sees as its end.
    /// The lines still queued here are dropped, not sent ahead of the
    /// `Drain`: a stop must not wait for a slow or stopped worker to read up
    /// to [`MOST_TEXT_QUEUED`] bytes of them (those already in its socket
    /// it reads first, as ever). Returns the lines dropped and their bytes.
    pub fn request_drain(&mut self) -> (usize, usize) {
        if self.channel.is_none() || self.drain_requested {
            return (0, 0);
        }
        self.drain_requested = true;
        // A line lent to the kernel stays until its send completes.
        let lent = usize::from(self.sending_text).min(self.texts.len());
        let lines = self.texts.len() - lent;
        let bytes: usize = self.texts.drain(lent..).map(|text| text.len()).sum();
        self.text_bytes -= bytes;
        (lines, bytes)
    }
}
