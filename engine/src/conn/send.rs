//! Sending: the next send's slices, and what a send's completion or
//! failure moves on.

use super::{Connection, Context, Phase};

impl Connection {
    /// The next send to start, if one is due: the `msghdr` of the slices, valid
    /// until [`Connection::handle_sent`] or [`Connection::handle_send_failed`].
    pub fn poll_send(&mut self, ctx: &mut Context<'_>) -> Option<*const libc::msghdr> {
        if self.sending || self.phase == Phase::Closed {
            return None;
        }
        if self.settle_until.is_some_and(|until| ctx.now < until) {
            return None;
        }
        if !self.outgoing.is_pending()
            && !self.outgoing.fill(&mut self.replies, ctx.responses, &ctx.out, &mut self.out_sent)
        {
            return None;
        }
        self.sending = true;
        Some(self.outgoing.header())
    }

    /// The send just returned by [`Connection::poll_send`] when it is one
    /// slice: start and length, for a plain `send`.
    pub fn single_slice(&self) -> Option<(*const u8, usize)> {
        self.outgoing.single_slice()
    }

    /// The send in progress completed with `sent` bytes; returns the requests
    /// it finished answering.
    pub fn handle_sent(&mut self, sent: usize, carry: &mut [u8], ctx: &mut Context<'_>) -> u32 {
        self.sending = false;
        if self.phase == Phase::Closed {
            self.outgoing.finish(ctx.responses);
            return 0;
        }
        if !self.outgoing.advance(sent) {
            // A partial send (a slow reader): `poll_send` goes on from where it
            // stopped. None at all (epoll's send on a full socket) is no progress.
            if sent > 0 {
                self.refresh_deadline(ctx);
            }
            return 0;
        }
        // Counted once the answers are with the kernel, not when parsed.
        let answered = self.outgoing.finish(ctx.responses);
        if self.out_sent == self.out_len {
            // Everything framed is sent: the output buffer starts over.
            self.out_sent = 0;
            self.out_len = 0;
            self.keep_alive_at = None;
        }
        if self.phase == Phase::Paused {
            // Replies drained: take up the held input again. Draining, its
            // answers settle as those of a read that emptied the socket do:
            // the driver reads again now, and any input it finds moves the
            // settle on (as after any read).
            self.phase = Phase::Reading;
            self.parse_carry(carry, ctx);
            self.settle_if_draining(ctx);
        }
        if let Phase::Finishing { linger } = self.phase {
            if self.replies.is_empty() {
                if linger && !self.read_closed {
                    self.start_linger(ctx);
                } else {
                    self.phase = Phase::Closed;
                }
                return answered;
            }
        }
        self.after_progress(ctx);
        answered
    }

    /// The send failed (the client reset the connection, or it was cancelled).
    pub fn handle_send_failed(&mut self, ctx: &mut Context<'_>) {
        self.sending = false;
        self.outgoing.finish(ctx.responses);
        self.phase = Phase::Closed;
    }
}
