//! A drain: idle connections hurried out after a grace, and the last
//! answer of a busy one made to carry `Connection: close`.

use super::{Connection, Context, OutBuf, Phase, Timer};
use crate::answer::{CLOSE, KEEP_ALIVE};

/// How long a draining worker keeps an idle connection for a request already on its way.
pub const DRAIN_GRACE_MS: u64 = 100;
/// A draining worker keeps a keep-alive connection whose last answer went
/// out less than this long ago until this long after it, for its client's
/// next request (answered with `Connection: close`), instead of closing it
/// after [`DRAIN_GRACE_MS`]: a client that used its connection a moment ago
/// is likely to use it again, and a request sent as our close crosses it is
/// lost (only an idempotent one may be sent again: RFC 9110 9.2.2). Seen in
/// upgrades under keep-alive clients pausing 0-300 ms between requests. A
/// drain lasts at most this much longer for it.
pub const DRAIN_RECENT_MS: u64 = 1_000;
/// The same for a connection that has not yet sent its first request. A
/// client connects, then writes: on busy cores its write can come well after
/// the accept, and closing the connection first fails a request that no client
/// sends again (only a reused connection's may be retried, RFC 9110 9.2.2).
/// Seen behind a balancer: `wrk` errors during a rolling upgrade on loaded cores.
pub const DRAIN_FIRST_REQUEST_GRACE_MS: u64 = 1_000;
/// While draining, how long the socket must stay empty before the last
/// answer is made to close the connection: a client streaming pipelined
/// requests may have more on the way than the socket held at one read.
pub const DRAIN_SETTLE_MS: u64 = 100;

impl Connection {
    /// The worker began to drain: an idle connection closes after a short
    /// grace (a request sent before the drain may still be on its way), the
    /// others after the last reply of what they hold.
    pub fn handle_drain(&mut self, ctx: &Context<'_>) {
        self.hurry_if_idle(ctx);
    }

    /// Draining, with no more input known to wait (the socket looked empty
    /// after a read, or held input was all taken up after a pause) and
    /// answers queued: hold them a moment for more input; if none comes, the
    /// last one closes the connection ([`Connection::handle_timeout`]).
    pub(super) fn settle_if_draining(&mut self, ctx: &Context<'_>) {
        if ctx.draining && self.phase == Phase::Reading && !self.replies.is_empty() {
            self.settle_until = Some(ctx.now + DRAIN_SETTLE_MS);
        }
    }

    /// While draining, once a read has emptied the socket and left no
    /// partial request, the last queued answer carries `Connection: close`
    /// and the connection closes after it: every request the client sent is
    /// answered, and the client learns not to send more.
    pub(super) fn close_after_last_answer(&mut self, out: &mut OutBuf<'_>) {
        let settled = self.phase == Phase::Reading && self.carry_len == 0 && self.parser.between_requests();
        if settled && (self.replies.close_last() || self.close_last_handler_answer(out)) {
            self.phase = Phase::Finishing { linger: true };
        }
    }

    /// Turns the `Connection: keep-alive` of the handler's answer queued last
    /// into `Connection: close`, moving the rest of the answer (the blank
    /// line, the body: the end of the output buffer) back by the difference.
    /// False when the last reply queued is not such an answer. Its bytes are
    /// still unsent: a run is taken for sending whole, and this one is queued.
    fn close_last_handler_answer(&mut self, out: &mut OutBuf<'_>) -> bool {
        let Some(at) = self.keep_alive_at.take() else { return false };
        if !self.replies.last_is_dynamic() {
            return false;
        }
        // From the field to the end of what is written: none of it is sent yet.
        let out = out.slice_mut(at..self.out_len);
        debug_assert_eq!(&out[..KEEP_ALIVE.len()], KEEP_ALIVE);
        out[..CLOSE.len()].copy_from_slice(CLOSE);
        out.copy_within(KEEP_ALIVE.len().., CLOSE.len());
        let shorter = KEEP_ALIVE.len() - CLOSE.len();
        self.out_len -= shorter;
        self.replies.shorten_last(shorter);
        true
    }

    /// Draining: an idle connection closes after a grace, a longer one while
    /// its first request has not come (its timer is still the header timer
    /// it was opened with; any request begun or answered has moved it on),
    /// and one whose client used it a moment ago not before
    /// [`DRAIN_RECENT_MS`] after that.
    pub(super) fn hurry_if_idle(&mut self, ctx: &Context<'_>) {
        if self.is_idle() {
            let until = match self.timer {
                Timer::Header => ctx.now + DRAIN_FIRST_REQUEST_GRACE_MS,
                _ => (ctx.now + DRAIN_GRACE_MS).max(self.idle_since + DRAIN_RECENT_MS),
            };
            self.deadline = self.deadline.min(until);
        }
    }
}
