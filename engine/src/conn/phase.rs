//! Where a connection is in its life ([`Phase`]), and what the driver asks
//! of it: closed, idle, reclaimable, reading, owing answers.

use super::{Connection, Timer};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Parsing requests and queueing their replies.
    Reading,
    /// The reply queue is full: input waits in the carry buffer until it
    /// drains, and the driver stops reading (back-pressure).
    Paused,
    /// A reply that closes the connection is queued; input after it is
    /// discarded. Once everything is sent the connection closes at once
    /// (`linger: false`: the client asked to close and sent nothing after, or
    /// has closed) or half-closes and lingers.
    Finishing {
        /// Half-close and wait for the client's FIN instead of closing.
        linger: bool,
    },
    /// Our FIN is sent; input is discarded until the client's FIN or the
    /// deadline, so that unread input never turns our close into a reset
    /// that destroys the reply. Input moves the deadline on (up to
    /// [`LINGER_MOST_MS`](super::close::LINGER_MOST_MS) from the linger's start).
    Lingering,
    /// Over: the driver closes the socket and frees the slot.
    Closed,
}

impl Connection {
    /// The phase.
    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Over: the driver closes the socket and frees the slot.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// A send is outstanding.
    pub fn is_sending(&self) -> bool {
        self.sending
    }

    /// Nothing in progress: no partial request, nothing queued or being sent.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Reading && self.parser.between_requests() && self.carry_len == 0 && !self.owes_output()
    }

    /// Replies are queued, a send is in flight, or the rest of one the
    /// socket took only part of waits for [`Connection::poll_send`] (no send
    /// is in flight then, and the queue may be empty: the send took it all).
    pub(super) fn owes_output(&self) -> bool {
        self.sending || self.outgoing.is_pending() || !self.replies.is_empty()
    }

    /// Answers are owed and the writer's clock runs (no body is on its
    /// way): input now waits behind them, or is discarded after a closing
    /// one it made (see [`ReaderWatch`](super::ReaderWatch)).
    pub(super) fn writing(&self) -> bool {
        self.owes_output()
            && self.timer == Timer::Idle
            && self.parser.between_requests()
            && matches!(self.phase, Phase::Reading | Phase::Paused | Phase::Finishing { .. })
    }

    /// Part of a request has come and the rest is awaited: a header block
    /// begun, or a body not all here.
    pub fn has_partial_request(&self) -> bool {
        self.phase == Phase::Reading && (self.carry_len > 0 || !self.parser.between_requests())
    }

    /// Its client's reset may come behind input that nothing answers: part
    /// of a request, empty lines before one, or input while it lingers after
    /// a closing answer. On io_uring a multishot receive that takes the last
    /// bytes of a socket already reset posts them as more to come and never
    /// reports the reset (Linux 6.18); a send would report it, and no send
    /// follows such input.
    pub fn needs_reset_watch(&self) -> bool {
        self.has_partial_request() || (self.unanswered_input && !self.read_closed && self.phase != Phase::Closed)
    }

    /// An idle keep-alive connection a full worker may close to make room:
    /// it has been answered, nothing of a next request has come, nothing is
    /// queued or being sent, and its client has not closed.
    pub fn is_reclaimable(&self) -> bool {
        self.is_idle() && self.timer == Timer::Idle && !self.read_closed && self.settle_until.is_none()
    }

    /// When its idle timer last started: the last answer's send, or input.
    pub fn idle_since(&self) -> u64 {
        self.idle_since
    }

    /// The most bytes it has used of its carry buffer and of its output
    /// buffer since it opened (their first bytes: both fill from the start).
    pub fn touched(&self) -> (usize, usize) {
        (self.carry_touched, self.out_touched)
    }

    /// True while the driver should read from the socket.
    pub fn wants_read(&self) -> bool {
        !self.read_closed && matches!(self.phase, Phase::Reading | Phase::Finishing { .. } | Phase::Lingering)
    }

    /// Requests parsed (answers queued) since the last call.
    pub fn take_parsed(&mut self) -> u32 {
        std::mem::take(&mut self.parsed)
    }
}
