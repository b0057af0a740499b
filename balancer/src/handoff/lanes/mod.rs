//! A lane is the master's end of one worker's channel plus the connections
//! queued for it: accepted fds wait in the queue, up to [`MAX_FDS`] go out in
//! one `SCM_RIGHTS` message, and the master keeps its copies until the worker
//! acknowledges the batch. At most one batch is in the worker's socket at a
//! time (Node's `free` list, per batch): connections that come meanwhile wait
//! here, where the master still owns them and can give them to another worker
//! if this one stops answering, and go out together once the batch in the
//! socket is settled. The worker's acks, which it publishes in its shared
//! stats slot ([`SharedAcks`]), settle each batch exactly once, in order:
//! the adopted prefix is closed here (the worker has those connections), the
//! rest (dropped by the kernel at the worker's fd limit, or declined because
//! it is full) goes to another worker. A worker that dies first, with a batch
//! unread in its socket or unacknowledged, loses nothing: every fd the master
//! still holds goes to another worker.
//!
//! The master reads the acks each loop turn; it asks the worker for a
//! message ([`Lane::ask_wake`]) only when it would otherwise sleep on one
//! ([`Lane::awaits_ack`]). No I/O happens here: the master's loop makes the
//! sends and receives (the message a lane lends it, a multishot receive on
//! its channel for wake-ups and lines of text) and reports their results
//! back. Connections are `OwnedFd`s from accept to the close (or the
//! refusal) that ends the master's copy.
//!
//! [`SharedAcks`]: ringmaster_engine::shared_acks::SharedAcks

mod acks;
mod gone;
mod queue;
mod send;

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{Message, MAX_FDS, WORKER_MESSAGE_MAX};
use ringmaster_engine::shared_acks::MAX_UNSETTLED;

use super::ack_delay::AckDelay;
use crate::reactor::DATAGRAM_MAX;

pub use send::{send_may_succeed_later, Sent};

/// Room for queued fds before a burst makes the queues grow.
const QUEUE_CAPACITY: usize = 4096;
/// How long a lane waits before it sends again after the kernel refused a
/// message for now ([`send_may_succeed_later`]); the master's tick comes
/// within 100 ms, so the retry is never forgotten.
pub const SEND_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Bytes of `ctl send` lines a worker may leave untaken (a thousand lines
/// of the most a line holds) before more are not queued for it: else a
/// stopped or wedged worker made the master keep every line sent to it
/// for as long as it stayed so (seen: 3.8 MB a second under a client
/// sending 1 KiB lines).
pub const MOST_TEXT_QUEUED: usize = 1 << 20;

// One receive of the master's holds a whole line of a worker's text.
const _: () = assert!(DATAGRAM_MAX >= WORKER_MESSAGE_MAX);
// One batch in the worker's socket at a time: the shared acks' ring holds it.
const _: () = assert!(MAX_UNSETTLED >= 1);

/// One worker's channel, seen from the master.
#[derive(Debug)]
pub struct Lane {
    channel: Option<OwnedFd>,
    pending: VecDeque<OwnedFd>,
    in_flight: Vec<OwnedFd>,
    /// When the batch in flight was handed to the kernel, and the same on
    /// `CLOCK_MONOTONIC` in nanoseconds (the clock the worker stamps its ack with).
    in_flight_since: Option<(Instant, u64)>,
    /// The kernel refused the last message for now: nothing is sent before then.
    retry_at: Option<Instant>,
    /// Sent but not yet acknowledged, oldest first; `batches` holds their
    /// sizes and when each was sent (as `in_flight_since`).
    unacked: VecDeque<OwnedFd>,
    batches: VecDeque<(usize, (Instant, u64))>,
    /// Batches settled so far: the number of the oldest in `batches` in the
    /// worker's shared acks.
    settled: u64,
    message: Box<Message>,
    /// Lines for the worker's handler, oldest first, sent after the
    /// connections queued before them.
    texts: VecDeque<Box<[u8]>>,
    /// Their bytes, at most [`MOST_TEXT_QUEUED`].
    text_bytes: usize,
    /// A line refused for want of room was said since the worker last took one.
    texts_refusal_said: bool,
    sending: bool,
    sending_text: bool,
    sending_drain: bool,
    receiving: bool,
    /// The worker's side of the channel ended: no more acknowledgements to read.
    acks_ended: bool,
    /// The worker died: nothing more is sent; once no op is in flight, the
    /// acknowledgements it left are read and everything else is handed back.
    worker_gone: bool,
    drain_requested: bool,
    /// How long the worker has lately taken to acknowledge a batch.
    ack_delay: AckDelay,
    /// Changes each time the lane is opened for a new worker, so a completion
    /// for an older channel is recognised.
    pub epoch: u32,
}

impl Lane {
    /// A lane with no worker yet.
    pub fn new() -> Lane {
        Lane {
            channel: None,
            pending: VecDeque::with_capacity(QUEUE_CAPACITY),
            in_flight: Vec::with_capacity(MAX_FDS),
            in_flight_since: None,
            retry_at: None,
            unacked: VecDeque::with_capacity(MAX_FDS),
            batches: VecDeque::with_capacity(4),
            settled: 0,
            message: Message::new(),
            texts: VecDeque::new(),
            text_bytes: 0,
            texts_refusal_said: false,
            sending: false,
            sending_text: false,
            sending_drain: false,
            receiving: false,
            acks_ended: false,
            worker_gone: false,
            drain_requested: false,
            ack_delay: AckDelay::default(),
            epoch: 0,
        }
    }

    /// Attaches a new worker's channel.
    pub fn open(&mut self, channel: OwnedFd) {
        self.epoch = self.epoch.wrapping_add(1);
        self.channel = Some(channel);
        // The master emptied the worker's shared acks before it started.
        self.settled = 0;
        // A new process: the old one's delays say nothing about it.
        self.ack_delay = AckDelay::default();
        self.acks_ended = false;
        self.worker_gone = false;
        self.drain_requested = false;
        self.sending_drain = false;
        self.retry_at = None;
    }

    /// True when new connections may be routed here.
    pub fn is_routable(&self) -> bool {
        self.channel.is_some() && !self.drain_requested && !self.worker_gone
    }

    /// True when no worker uses the lane and nothing is queued or in flight:
    /// it can serve a new worker.
    pub fn is_free(&self) -> bool {
        self.channel.is_none()
            && !self.sending
            && !self.receiving
            && self.pending.is_empty()
            && self.in_flight.is_empty()
            && self.unacked.is_empty()
    }

    /// Connections whose fds the master holds for this lane: queued, in
    /// flight, or sent and not yet acknowledged.
    pub fn held_fds(&self) -> usize {
        self.pending.len() + self.handed()
    }

    /// Connections handed to the worker (in flight or in its socket) and not
    /// yet acknowledged.
    pub fn handed(&self) -> usize {
        self.in_flight.len() + self.unacked.len()
    }

    /// Connections queued here for the worker, not yet sent.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// How long the oldest batch handed to the worker has waited for its
    /// acknowledgement at `now` (zero when none waits).
    pub fn ack_wait(&self, now: Instant) -> Duration {
        let oldest = self.batches.front().map(|&(_, at)| at).or(self.in_flight_since);
        oldest.map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(at))
    }

    /// How long the worker has lately taken to acknowledge a batch, from
    /// the master's send to its own ack, as estimated at `now` ([`AckDelay`]).
    pub fn ack_delay(&self, now: Instant) -> Duration {
        self.ack_delay.at(now)
    }

    /// True while the channel is open and its end not seen.
    pub fn is_open(&self) -> bool {
        self.channel.is_some() && !self.acks_ended
    }

    /// True while a receive is armed on the channel (cancel it when closing,
    /// or the ring keeps the socket open and the worker never sees the end).
    pub fn is_receiving(&self) -> bool {
        self.receiving
    }
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
