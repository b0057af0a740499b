//! How a connection ends: the client's close, a read error, our FIN and
//! the linger after it, the slot given back.

use super::{Connection, Context, Phase, ReaderWatch, Timer};
use crate::answer::Answering;

/// How long a closing connection waits for the client's FIN after ours
/// while nothing comes (as nginx's `lingering_timeout`): input moves it on.
pub const LINGER_MS: u64 = 2_000;
/// The longest a closing connection lingers from our FIN while its client
/// goes on sending (as nginx's `lingering_time`, 30 s by default). A client
/// still uploading a refused body (a `413` before it ends, a slow `503`)
/// sends for as long as it takes; closing on its input resets the
/// connection, and a client that sees the reset on its write often reports
/// that instead of reading the answer already sent. Bounded, so that a
/// client that never stops sending cannot hold a slot for good.
pub const LINGER_MOST_MS: u64 = 30_000;

impl Connection {
    /// The client closed its side.
    pub fn handle_peer_closed(&mut self, ctx: &mut Context<'_>) {
        self.read_closed = true;
        match self.phase {
            Phase::Lingering => self.phase = Phase::Closed,
            // Answer what was asked, then close: no need to wait for a FIN now.
            Phase::Finishing { .. } if !self.owes_output() => self.phase = Phase::Closed,
            Phase::Finishing { .. } => self.phase = Phase::Finishing { linger: false },
            Phase::Reading | Phase::Paused => self.after_progress(ctx),
            Phase::Closed => {}
        }
    }

    /// Reading failed: the connection is over.
    pub fn handle_read_error(&mut self) {
        self.phase = Phase::Closed;
    }

    /// True once when our FIN is due (`shutdown(SHUT_WR)`).
    pub fn take_half_close(&mut self) -> bool {
        std::mem::take(&mut self.half_close_due)
    }

    /// Gives back what a connection holds when its slot is freed (a send's
    /// page hold, if the close cut a send short).
    pub fn release(&mut self, ctx: &mut Context<'_>) {
        self.outgoing.finish(ctx.responses);
        if let Answering::Dynamic(dynamic) = &mut ctx.answering {
            self.assembly.release(dynamic.bodies);
        }
        self.phase = Phase::Closed;
    }

    pub(super) fn start_linger(&mut self, ctx: &Context<'_>) {
        // Every answer is out: a look still on its way (asked through the
        // ring) is moot, and must not move or end the linger.
        self.reader = ReaderWatch::default();
        self.phase = Phase::Lingering;
        self.half_close_due = true;
        self.timer = Timer::Linger;
        self.linger_started = ctx.now;
        self.deadline = ctx.now + LINGER_MS;
    }

    /// Input while lingering: its client is still sending, and closing now
    /// would answer the rest with a reset, so the linger waits another
    /// [`LINGER_MS`] of quiet, but ends [`LINGER_MOST_MS`] after it began.
    /// Not while draining: a drain then waits for a lingering connection no
    /// longer than [`LINGER_MS`] after it began, as when the linger never moved.
    pub(super) fn extend_linger(&mut self, ctx: &Context<'_>) {
        if ctx.draining {
            return;
        }
        self.deadline = (ctx.now + LINGER_MS).min(self.linger_started + LINGER_MOST_MS);
    }
}
