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

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{Ack, Message, Tag, MAX_FDS, WORKER_MESSAGE_MAX};
use ringmaster_engine::monotonic_ns;
use ringmaster_engine::shared_acks::{SharedAcks, MAX_UNSETTLED};

use super::ack_delay::AckDelay;
use crate::reactor::{Lent, DATAGRAM_MAX};

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

/// What a completed send means for the fds the lane held.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The batch is in the worker's socket, awaiting its acknowledgement.
    Delivered,
    /// The `Drain` went out after every batch was settled, and the channel is
    /// closed.
    Finished,
    /// The kernel could not take the message now (out of memory, or too
    /// many fds in flight for the user): nothing reached the worker, which
    /// is alive and keeps its lane; the message goes again after
    /// [`SEND_RETRY_PAUSE`].
    Retry,
    /// The worker is gone: the fds in the output never reached it, to route again.
    Failed,
}

/// True for a `sendmsg` error on a connected `SOCK_SEQPACKET` socket that
/// says nothing about the worker: the kernel is short of memory for the
/// message or its fd list (`ENOBUFS`, `ENOMEM`), the user has too many fds
/// in flight in unix sockets (`ETOOMANYREFS`: more than its open-file limit,
/// without `CAP_SYS_RESOURCE`), or the socket is full or the call was
/// interrupted (`EAGAIN`, `EINTR`: the reactors wait and retry themselves,
/// but were one to come through it means the same). Such a message is not
/// queued at all (a datagram goes whole or not at all), so its fds never
/// reached the worker, and sending it again later may succeed.
pub fn send_may_succeed_later(errno: i32) -> bool {
    matches!(errno, libc::ENOBUFS | libc::ENOMEM | libc::ETOOMANYREFS | libc::EAGAIN | libc::EINTR)
}

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
    pub fn request_drain(&mut self) {
        if self.channel.is_some() {
            self.drain_requested = true;
        }
    }

    /// The next message to send, if the lane is idle and the worker's socket
    /// holds no batch awaiting its acknowledgement; lent until [`Lane::on_sent`].
    pub fn next_send(&mut self, now: Instant) -> Option<Lent> {
        let channel = self.channel.as_ref()?.as_raw_fd();
        if self.sending || self.worker_gone || self.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        let header = if !self.pending.is_empty() {
            if !self.batches.is_empty() {
                // One batch in the worker's socket at a time: the rest waits here.
                return None;
            }
            let batch = self.pending.len().min(MAX_FDS);
            self.in_flight.extend(self.pending.drain(..batch));
            self.in_flight_since = Some((now, monotonic_ns()));
            // The message copies the numbers; the fds stay ours until the ack.
            let mut numbers = [0 as RawFd; MAX_FDS];
            for (number, fd) in numbers.iter_mut().zip(&self.in_flight) {
                *number = fd.as_raw_fd();
            }
            self.message.prepare_send(Tag::Connections, &numbers[..batch])
        } else if let Some(text) = self.texts.front() {
            self.sending_text = true;
            self.message.prepare_send_text(text)
        } else if self.drain_requested && !self.sending_drain {
            self.sending_drain = true;
            self.message.prepare_send(Tag::Drain, &[])
        } else {
            return None;
        };
        self.sending = true;
        // SAFETY: the header points into the boxed message, which the lane
        // does not touch, move or free while `sending`, that is until `on_sent`
        // (it is dropped only with the lane, after the master's reactor).
        Some(unsafe { Lent::send_msg(channel, header) })
    }

    /// The channel to arm a multishot receive on for the worker's
    /// acknowledgements, when none is armed; armed from then until a
    /// completion without `more` reaches [`Lane::on_received`].
    pub fn next_recv(&mut self) -> Option<RawFd> {
        let channel = self.channel.as_ref()?.as_raw_fd();
        if self.receiving || self.acks_ended || self.worker_gone {
            return None;
        }
        self.receiving = true;
        Some(channel)
    }

    /// Records the result of the send in flight (bytes, or `-errno` as the
    /// reactor reports it) at `now`; fds to close or re-route go to `out`.
    pub fn on_sent(&mut self, result: i32, now: Instant, out: &mut Vec<OwnedFd>) -> Sent {
        self.sending = false;
        let since = self.in_flight_since.take();
        if result < 0 && send_may_succeed_later(-result) && self.channel.is_some() && !self.worker_gone {
            // Nothing reached the worker, which lives on: the same message
            // goes again after a pause. Were the lane to take this for the
            // worker's death, it would close the channel (the worker drains
            // and exits) and hand the batch in its socket, unacknowledged but
            // maybe adopted, to another worker too.
            self.retry_at = Some(now + SEND_RETRY_PAUSE);
            if !self.in_flight.is_empty() {
                for fd in self.in_flight.drain(..).rev() {
                    self.pending.push_front(fd);
                }
            } else if !self.sending_text && self.sending_drain {
                self.sending_drain = false;
            }
            self.sending_text = false;
            return Sent::Retry;
        }
        if std::mem::take(&mut self.sending_text) {
            // Sent or not, the line is done with (a gone worker cannot read it).
            if let Some(text) = self.texts.pop_front() {
                self.text_bytes -= text.len();
                self.texts_refusal_said = false;
            }
        }
        if result < 0 || self.channel.is_none() {
            // The worker is gone: this batch never reached it. What it may have
            // acknowledged before is settled by `finish_gone`.
            self.worker_gone = true;
            out.append(&mut self.in_flight);
            return Sent::Failed;
        }
        if !self.in_flight.is_empty() {
            self.batches.push_back((self.in_flight.len(), since.unwrap_or((now, monotonic_ns()))));
            self.unacked.extend(self.in_flight.drain(..));
            return Sent::Delivered;
        }
        if self.sending_drain && !self.worker_gone && self.batches.is_empty() {
            // Everything sent was settled before Drain went out: the channel can
            // close now, which the worker sees as its end of stream.
            self.channel = None;
            return Sent::Finished;
        }
        // Drain is out but batches are unsettled: the channel stays open for
        // their acks (the worker may decline some), then closes.
        Sent::Delivered
    }

    /// Records one completion of the multishot receive on the channel:
    /// `result` as the kernel reported it, `more` when the receive goes on.
    /// A message is a line of the worker's text, or a wake-up for acks
    /// waited for ([`Lane::settle_published`] reads them); neither settles
    /// anything itself. False when the channel is closed now (the worker's
    /// end is gone, or it was closed after its last ack).
    pub fn on_received(&mut self, result: i32, more: bool) -> bool {
        if !more {
            self.receiving = false;
        }
        if result == 0 || (result < 0 && !matches!(-result, libc::ENOBUFS | libc::EINTR | libc::ECANCELED)) {
            // End of stream, or the channel broke: no more messages will come.
            self.acks_ended = true;
        }
        self.is_open()
    }

    /// True while the channel is open and its end not seen.
    pub fn is_open(&self) -> bool {
        self.channel.is_some() && !self.acks_ended
    }

    /// Settles the batches the worker has acknowledged in its shared slot,
    /// oldest first, each once: the fds it adopted go to `adopted` (to close:
    /// ours are copies), the rest to `declined` (to route elsewhere), and
    /// the time it took to acknowledge each goes into its recent delay. A
    /// batch acknowledged before its send's completion is reported waits for
    /// it. Returns how many batches were settled.
    pub fn settle_published(
        &mut self,
        acks: &SharedAcks,
        adopted: &mut Vec<OwnedFd>,
        declined: &mut Vec<OwnedFd>,
    ) -> usize {
        if self.batches.is_empty() {
            return 0;
        }
        let published = acks.settled();
        if self.settled >= published {
            return 0;
        }
        let now = Instant::now();
        let mut settled = 0;
        while self.settled < published && !self.batches.is_empty() {
            if let Some(&(_, (_, sent_ns))) = self.batches.front() {
                let took = acks.acked_at(self.settled).saturating_sub(sent_ns);
                self.ack_delay.observe(Duration::from_nanos(took), now);
            }
            self.settle_oldest(acks.ack(self.settled), adopted, declined);
            self.settled += 1;
            settled += 1;
        }
        if self.sending_drain && !self.sending && !self.worker_gone && self.batches.is_empty() && settled > 0 {
            // The last batch before Drain is settled: close, the worker sees its end.
            self.channel = None;
        }
        settled
    }

    /// True when the master would wait for this worker's ack of its batch:
    /// connections are queued behind it, the drain waits for it, or
    /// `others_wait` (held connections, a stop).
    pub fn awaits_ack(&self, others_wait: bool) -> bool {
        !self.batches.is_empty()
            && self.channel.is_some()
            && !self.worker_gone
            && (!self.pending.is_empty() || self.drain_requested || others_wait)
    }

    /// Asks the worker to wake the master when it acknowledges; true when
    /// the ack came meanwhile (settle it now: no message will come).
    pub fn ask_wake(&self, acks: &SharedAcks) -> bool {
        acks.ask_wake(self.settled) != self.settled
    }

    fn settle_oldest(&mut self, ack: Ack, adopted: &mut Vec<OwnedFd>, declined: &mut Vec<OwnedFd>) {
        let Some((size, _)) = self.batches.pop_front() else { return };
        let size = size.min(self.unacked.len());
        let taken = usize::from(ack.adopted).min(size);
        adopted.extend(self.unacked.drain(..taken));
        declined.extend(self.unacked.drain(..size - taken));
    }

    /// True while a receive is armed on the channel (cancel it when closing,
    /// or the ring keeps the socket open and the worker never sees the end).
    pub fn is_receiving(&self) -> bool {
        self.receiving
    }

    /// The worker exited: stop sending to it. Cancel an armed receive, then
    /// call [`Lane::finish_gone`] once [`Lane::can_finish`] says no op is in flight.
    pub fn mark_gone(&mut self) {
        self.worker_gone = true;
    }

    /// True when the worker is gone and no send or receive is in flight.
    pub fn can_finish(&self) -> bool {
        self.worker_gone && self.channel.is_some() && !self.sending && !self.receiving
    }

    /// Settles a dead worker's lane: settles the batches the worker
    /// acknowledged in its shared slot before dying (the connections they
    /// adopted were its own: closed, not re-routed), closes the channel and
    /// hands back everything else in `out`.
    pub fn finish_gone(&mut self, acks: &SharedAcks, closed: &mut Vec<OwnedFd>, out: &mut Vec<OwnedFd>) {
        self.settle_published(acks, closed, out);
        self.channel = None;
        self.batches.clear();
        self.texts.clear();
        self.text_bytes = 0;
        // The next worker on this lane has its own refusal to be told of.
        self.texts_refusal_said = false;
        out.extend(self.unacked.drain(..));
        out.append(&mut self.in_flight);
        out.extend(self.pending.drain(..));
    }
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "lanes_tests.rs"]
mod tests;
