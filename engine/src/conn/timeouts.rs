//! The timers: `--header-timeout`, `--body-timeout` (earned on by what
//! arrives), `--idle-timeout`, and the linger's; the deadline each sets, and
//! what happens when it passes.

use super::close::LINGER_MS;
use super::drain::DRAIN_GRACE_MS;
use super::{Connection, Context, Phase, ReaderWatch};
use crate::answer::Answering;
use crate::http::Reply;

/// Body bytes that buy one more second of `--body-timeout`.
const BODY_BYTES_PER_SECOND: u64 = 1024;

/// Which deadline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A header block in progress (`--header-timeout`, from its first byte, not refreshed).
    Header,
    /// A request body in progress (`--body-timeout`, extended by what arrives).
    Body,
    /// Idle between requests, or writing to a slow reader (`--idle-timeout`:
    /// between requests refreshed by input; while answers are owed by send
    /// progress, or at its end by the client's kernel taking bytes, see
    /// [`ReaderWatch`]).
    Idle,
    /// Closing: waiting for the client's FIN ([`LINGER_MS`] of quiet,
    /// refreshed by input up to [`LINGER_MOST_MS`](super::close::LINGER_MOST_MS)), or for a last reply to go out.
    Linger,
}

/// The connection timeouts, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `--header-timeout`.
    pub header_ms: u64,
    /// `--body-timeout`.
    pub body_ms: u64,
    /// `--idle-timeout`.
    pub idle_ms: u64,
}

impl Connection {
    /// When the connection next needs [`Connection::handle_timeout`], in the
    /// context's milliseconds: its timer, or the end of a drain's settling.
    pub fn deadline(&self) -> u64 {
        self.settle_until.map_or(self.deadline, |until| until.min(self.deadline))
    }

    /// The running timer.
    #[cfg(test)]
    pub fn timer(&self) -> Timer {
        self.timer
    }

    /// The deadline passed (the driver calls this once `ctx.now >= deadline()`).
    pub fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if self.settle_until.is_some_and(|until| until <= ctx.now) {
            // Draining, and nothing more came: the last answer closes.
            self.settle_until = None;
            self.close_after_last_answer(&mut ctx.out);
            return;
        }
        match (self.phase, self.timer) {
            (Phase::Closed, _) => {}
            // A body too slow to finish: say so where a reply can still be sent.
            (Phase::Reading | Phase::Paused, Timer::Body) if !self.replies.is_full() => {
                // A final reply, counted as every other one queued is.
                self.parsed += 1;
                self.push_page(Reply::RequestTimeout);
                // The request ends here: what was gathered of it frees its
                // buffer now, not when a linger that may last 30 s ends.
                if let Answering::Dynamic(dynamic) = &mut ctx.answering {
                    self.assembly.release(dynamic.bodies);
                }
                self.carry_len = 0;
                self.phase = Phase::Finishing { linger: true };
                self.timer = Timer::Linger;
                self.deadline = ctx.now + LINGER_MS;
            }
            // The writer's deadline, input having come meanwhile: ask whether
            // the client reads before closing (`ReaderWatch`). Not a second
            // time while the first question is unanswered.
            (Phase::Reading | Phase::Paused | Phase::Finishing { .. }, Timer::Idle)
                if self.reader.armed && !self.reader.awaiting && self.owes_output() =>
            {
                self.reader.look_due = true;
                // Until the answer: the driver may have to wait for it.
                self.deadline = ctx.now + ctx.timeouts.idle_ms;
            }
            _ => self.phase = Phase::Closed,
        }
    }

    /// The deadline passed while the driver could not read what the client
    /// may have sent: on io_uring its receive found every buffer of the
    /// ring held by other connections. That wait is the worker's, not the
    /// client's, so a timer that waits on the client's input (for a
    /// request's head, its body, or the next request) starts over rather
    /// than close the connection; true when it did. False, and left to
    /// [`Connection::handle_timeout`], for every other case: answers owed
    /// (the writer's clock), a linger.
    ///
    /// While draining, only while its receive `waits_for_buffer` now, and a
    /// drain's grace at a time: a request sent before the drain and unread
    /// for want of a buffer is answered (until 2026-12-07 the drain's
    /// hurried deadline closed it unanswered). Once its receive is armed
    /// again it reads what came, or nothing came (a client that met the
    /// empty ring idle), and the drain does not wait on it.
    pub fn postpone_for_unread_input(&mut self, ctx: &Context<'_>, waits_for_buffer: bool) -> bool {
        let drain_waits = !ctx.draining || waits_for_buffer;
        if self.phase != Phase::Reading || self.settle_until.is_some() || !drain_waits || self.owes_output() {
            return false;
        }
        let wait = match self.timer {
            Timer::Linger => return false,
            _ if ctx.draining => DRAIN_GRACE_MS,
            Timer::Header => ctx.timeouts.header_ms,
            Timer::Body => ctx.timeouts.body_ms,
            Timer::Idle => ctx.timeouts.idle_ms,
        };
        // The whole wait moves the timer on: a body's clock runs from its
        // start (`refresh_deadline`), so the start moves with it.
        let shift = (ctx.now + wait).saturating_sub(self.deadline);
        self.deadline += shift;
        if self.timer == Timer::Body {
            self.body_started += shift;
        }
        true
    }

    /// After input or a send: close a finished half-closed connection, move
    /// the deadline, hurry an idle one out while draining.
    pub(super) fn after_progress(&mut self, ctx: &mut Context<'_>) {
        match self.phase {
            Phase::Closed | Phase::Lingering => return,
            Phase::Reading if self.read_closed && !self.owes_output() => {
                // The client is gone and nothing is owed (an incomplete request
                // can no longer complete).
                self.phase = Phase::Closed;
                return;
            }
            _ => {}
        }
        self.refresh_deadline(ctx);
        if ctx.draining {
            self.hurry_if_idle(ctx);
        }
    }

    pub(super) fn refresh_deadline(&mut self, ctx: &Context<'_>) {
        let now = ctx.now;
        // Progress (a send's, or input while nothing was owed): what the
        // reader watch saw is moot, and an answer on its way with it.
        self.reader = ReaderWatch::default();
        if !self.parser.between_requests() && matches!(self.phase, Phase::Reading | Phase::Paused) {
            // A body on its way: it has `--body-timeout`, plus a second per KiB that came.
            if self.timer != Timer::Body {
                self.timer = Timer::Body;
            }
            let earned = self.body_bytes / BODY_BYTES_PER_SECOND * 1000;
            self.deadline = self.body_started + ctx.timeouts.body_ms + earned;
            return;
        }
        let busy = self.owes_output();
        if !busy && self.carry_len > 0 && self.phase == Phase::Reading {
            // A header block in progress: its clock started with its first byte.
            if self.timer != Timer::Header {
                self.timer = Timer::Header;
                self.deadline = now + ctx.timeouts.header_ms;
            }
            return;
        }
        self.timer = Timer::Idle;
        self.idle_since = now;
        self.deadline = now + ctx.timeouts.idle_ms;
    }
}
