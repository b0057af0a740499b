//! A lane is the master's end of one worker's channel plus the connections
//! queued for it: accepted fds wait in `pending`, up to [`MAX_FDS`] go out in
//! one `SCM_RIGHTS` message, and the master keeps its copies until the worker
//! acknowledges the batch. The [`Ack`] settles the batch exactly once: the
//! adopted prefix is closed here (the worker has those connections), the rest
//! (dropped by the kernel at the worker's fd limit, or declined because it is
//! full) goes to another worker. A worker that dies first, with batches unread
//! in its socket or unacknowledged, loses nothing: every fd the master still
//! holds goes to another worker.
//!
//! No I/O happens here: the master's loop makes the sends and receives with
//! the buffers a lane lends it, and reports their results back. Connections
//! are `OwnedFd`s from accept to the close (or the refusal) that ends the
//! master's copy.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use ringmaster_engine::channel::{Ack, Message, Tag, MAX_FDS};

use crate::reactor::Lent;

/// Room for queued fds before a burst makes the queues grow.
const QUEUE_CAPACITY: usize = 4096;
/// Room for one ack, and more: a longer message is not an ack (and is read whole).
const ACK_BUFFER: usize = 16;

/// What a completed send means for the fds the lane held.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The batch is in the worker's socket, awaiting its acknowledgement.
    Delivered,
    /// The `Drain` went out after every batch was settled, and the channel is
    /// closed.
    Finished,
    /// The worker is gone: the fds in the output never reached it, to route again.
    Failed,
}

/// One worker's channel, seen from the master.
#[derive(Debug)]
pub struct Lane {
    channel: Option<OwnedFd>,
    pending: VecDeque<OwnedFd>,
    in_flight: Vec<OwnedFd>,
    /// Sent but not yet acknowledged, oldest first; `batches` holds their sizes.
    unacked: VecDeque<OwnedFd>,
    batches: VecDeque<usize>,
    message: Box<Message>,
    ack_buffer: Box<[u8; ACK_BUFFER]>,
    sending: bool,
    sending_drain: bool,
    receiving: bool,
    /// The worker's side of the channel ended: no more acknowledgements to read.
    acks_ended: bool,
    /// The worker died: nothing more is sent; once no op is in flight, the
    /// acknowledgements it left are read and everything else is handed back.
    worker_gone: bool,
    drain_requested: bool,
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
            unacked: VecDeque::with_capacity(QUEUE_CAPACITY),
            batches: VecDeque::with_capacity(64),
            message: Message::new(),
            ack_buffer: Box::new([0; ACK_BUFFER]),
            sending: false,
            sending_drain: false,
            receiving: false,
            acks_ended: false,
            worker_gone: false,
            drain_requested: false,
            epoch: 0,
        }
    }

    /// Attaches a new worker's channel.
    pub fn open(&mut self, channel: OwnedFd) {
        self.epoch = self.epoch.wrapping_add(1);
        self.channel = Some(channel);
        self.acks_ended = false;
        self.worker_gone = false;
        self.drain_requested = false;
        self.sending_drain = false;
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
        self.pending.len() + self.in_flight.len() + self.unacked.len()
    }

    /// Queues an accepted connection for this lane's worker.
    pub fn enqueue(&mut self, fd: OwnedFd) {
        self.pending.push_back(fd);
    }

    /// Asks the worker to drain once every queued connection is sent; the
    /// channel is closed after that message, which the worker sees as its end.
    pub fn request_drain(&mut self) {
        if self.channel.is_some() {
            self.drain_requested = true;
        }
    }

    /// The next message to send when the lane is idle, lent until [`Lane::on_sent`].
    pub fn next_send(&mut self) -> Option<Lent> {
        let channel = self.channel.as_ref()?.as_raw_fd();
        if self.sending || self.worker_gone {
            return None;
        }
        let header = if !self.pending.is_empty() {
            let batch = self.pending.len().min(MAX_FDS);
            self.in_flight.extend(self.pending.drain(..batch));
            // The message copies the numbers; the fds stay ours until the ack.
            let mut numbers = [0 as RawFd; MAX_FDS];
            for (number, fd) in numbers.iter_mut().zip(&self.in_flight) {
                *number = fd.as_raw_fd();
            }
            self.message.prepare_send(Tag::Connections, &numbers[..batch])
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

    /// The receive for the worker's acknowledgements, when none is armed,
    /// lent until [`Lane::on_received`].
    pub fn next_recv(&mut self) -> Option<Lent> {
        let channel = self.channel.as_ref()?.as_raw_fd();
        if self.receiving || self.acks_ended || self.worker_gone {
            return None;
        }
        self.receiving = true;
        // SAFETY: the boxed ack buffer is not touched, moved or freed while
        // `receiving`, that is until `on_received` (it is dropped only with the
        // lane, after the master's reactor).
        Some(unsafe { Lent::recv(channel, self.ack_buffer.as_mut_ptr(), ACK_BUFFER) })
    }

    /// Records the result of the send in flight; fds to close or re-route go to `out`.
    pub fn on_sent(&mut self, succeeded: bool, out: &mut Vec<OwnedFd>) -> Sent {
        self.sending = false;
        if !succeeded || self.channel.is_none() {
            // The worker is gone: this batch never reached it. What it may have
            // acknowledged before is settled by `finish_gone`.
            self.worker_gone = true;
            out.append(&mut self.in_flight);
            return Sent::Failed;
        }
        if !self.in_flight.is_empty() {
            self.batches.push_back(self.in_flight.len());
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

    /// Records a receive on the channel: each message is the [`Ack`] of the
    /// oldest unsettled batch. The fds the worker adopted go to `adopted` (to
    /// close: ours are copies), the rest to `declined` (to route elsewhere).
    /// False when the receive ended the channel (the worker closed it or is gone).
    pub fn on_received(&mut self, result: i32, adopted: &mut Vec<OwnedFd>, declined: &mut Vec<OwnedFd>) -> bool {
        self.receiving = false;
        if result <= 0 {
            self.acks_ended = true;
            return false;
        }
        let ack = Ack::decode(&self.ack_buffer[..result as usize]);
        self.settle_oldest(ack, adopted, declined);
        if self.sending_drain && !self.sending && self.batches.is_empty() {
            // The last batch before Drain is settled: close, the worker sees its end.
            self.channel = None;
        }
        self.channel.is_some()
    }

    /// Settles the oldest unsettled batch. An unreadable ack counts as all
    /// adopted: a connection lost is better than one served twice.
    fn settle_oldest(&mut self, ack: Option<Ack>, adopted: &mut Vec<OwnedFd>, declined: &mut Vec<OwnedFd>) {
        let Some(size) = self.batches.pop_front() else { return };
        let size = size.min(self.unacked.len());
        let taken = ack.map_or(size, |a| usize::from(a.adopted).min(size));
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
    /// acknowledged before dying (`leftover_ack` reads each ack still in the
    /// channel, `None` when there is none; the connections they adopted were
    /// its own: closed, not re-routed), closes the channel and hands back
    /// everything else in `out`.
    pub fn finish_gone(
        &mut self,
        mut leftover_ack: impl FnMut(BorrowedFd<'_>, &mut [u8]) -> Option<usize>,
        closed: &mut Vec<OwnedFd>,
        out: &mut Vec<OwnedFd>,
    ) {
        if let Some(channel) = self.channel.take() {
            let mut buffer = [0u8; ACK_BUFFER];
            while !self.batches.is_empty() {
                let Some(n) = leftover_ack(channel.as_fd(), &mut buffer).filter(|&n| n > 0) else { break };
                self.settle_oldest(Ack::decode(&buffer[..n]), closed, out);
            }
        }
        self.batches.clear();
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
mod tests {
    use super::*;
    use crate::handoff::read_leftover_ack;
    use ringmaster_engine::channel::channel_pair;

    /// `n` real descriptors (the lane owns and closes them) and their numbers.
    fn fds(n: usize) -> (Vec<OwnedFd>, Vec<RawFd>) {
        let fds: Vec<OwnedFd> =
            (0..n).map(|_| OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"))).collect();
        let numbers = fds.iter().map(AsRawFd::as_raw_fd).collect();
        (fds, numbers)
    }

    fn numbers(fds: &[OwnedFd]) -> Vec<RawFd> {
        fds.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Puts an ack in the lane's receive buffer as the kernel would; its length.
    fn ack_into(lane: &mut Lane, received: usize, adopted: usize) -> i32 {
        let bytes = Ack { received: received as u16, adopted: adopted as u16 }.encode();
        lane.ack_buffer[..bytes.len()].copy_from_slice(&bytes);
        bytes.len() as i32
    }

    #[test]
    fn an_ack_settles_its_batch_once_whatever_the_worker_took() {
        let (mut lane, _worker) = open_lane();
        let (batch, n) = fds(15);
        let mut batch = batch.into_iter();
        for fd in batch.by_ref().take(10) {
            lane.enqueue(fd);
        }
        assert!(lane.next_send().is_some());
        let mut out = Vec::new();
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        for fd in batch {
            lane.enqueue(fd);
        }
        assert!(lane.next_send().is_some());
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        // First batch: 6 of 10 arrived (fd limit), 4 of those adopted (then full).
        let (mut adopted, mut declined) = (Vec::new(), Vec::new());
        assert!(lane.next_recv().is_some());
        let ack_len = ack_into(&mut lane, 6, 4);
        assert!(lane.on_received(ack_len, &mut adopted, &mut declined));
        assert_eq!(numbers(&adopted), n[0..4]);
        assert_eq!(numbers(&declined), n[4..10], "what the worker did not take goes elsewhere");
        // Second batch: nothing arrived at all; it is still settled, all declined.
        let (mut adopted, mut declined) = (Vec::new(), Vec::new());
        assert!(lane.next_recv().is_some());
        let ack_len = ack_into(&mut lane, 0, 0);
        assert!(lane.on_received(ack_len, &mut adopted, &mut declined));
        assert!(adopted.is_empty());
        assert_eq!(numbers(&declined), n[10..15]);
        // A stray ack settles nothing more.
        let (mut adopted, mut declined) = (Vec::new(), Vec::new());
        assert!(lane.next_recv().is_some());
        let ack_len = ack_into(&mut lane, 1, 1);
        assert!(lane.on_received(ack_len, &mut adopted, &mut declined));
        assert!(adopted.is_empty() && declined.is_empty());
    }

    fn open_lane() -> (Lane, OwnedFd) {
        let (master, worker) = channel_pair().expect("socketpair");
        let mut lane = Lane::new();
        lane.open(master);
        (lane, worker)
    }

    #[test]
    fn batches_wait_for_acks_then_drain_then_close() {
        let (mut lane, _worker) = open_lane();
        for fd in fds(MAX_FDS + 5).0 {
            lane.enqueue(fd);
        }
        lane.request_drain();
        assert!(!lane.is_routable());
        let mut out = Vec::new();
        assert!(lane.next_send().is_some());
        assert!(lane.next_send().is_none(), "one send at a time");
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert!(out.is_empty(), "copies are kept until the worker acknowledges");
        assert!(lane.next_recv().is_some());
        let mut declined = Vec::new();
        let ack_len = ack_into(&mut lane, MAX_FDS, MAX_FDS);
        assert!(lane.on_received(ack_len, &mut out, &mut declined));
        assert_eq!(out.len(), MAX_FDS, "the acknowledged batch is released");
        assert!(declined.is_empty());
        out.clear();
        assert!(lane.next_send().is_some());
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert!(lane.next_send().is_some(), "the drain message");
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered, "the last batch is not settled yet");
        assert!(out.is_empty());
        assert!(lane.next_recv().is_some());
        let mut declined = Vec::new();
        let ack_len = ack_into(&mut lane, 5, 3);
        assert!(!lane.on_received(ack_len, &mut out, &mut declined), "closed once settled");
        assert_eq!((out.len(), declined.len()), (3, 2), "a draining worker may decline too");
        assert!(!lane.is_routable());
        assert!(lane.next_send().is_none() && lane.next_recv().is_none());
    }

    #[test]
    fn a_dead_worker_gives_back_every_unacknowledged_fd() {
        use std::os::fd::AsRawFd as _;
        let (mut lane, worker) = open_lane();
        for fd in fds(2 * MAX_FDS + 3).0 {
            lane.enqueue(fd);
        }
        let mut out = Vec::new();
        assert!(lane.next_send().is_some());
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert!(lane.next_send().is_some());
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        // The worker acknowledged the first batch, then died before the master read it.
        let ack = Ack { received: MAX_FDS as u16, adopted: MAX_FDS as u16 }.encode();
        nix::sys::socket::send(worker.as_raw_fd(), &ack, nix::sys::socket::MsgFlags::empty()).expect("ack");
        drop(worker);
        lane.mark_gone();
        assert!(!lane.is_routable());
        assert!(lane.can_finish());
        let mut closed = Vec::new();
        lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
        assert_eq!(closed.len(), MAX_FDS, "the acknowledged batch is closed, not re-routed");
        assert_eq!(out.len(), MAX_FDS + 3, "the rest goes to other workers");
        assert!(lane.is_free());
    }

    #[test]
    fn a_send_that_lands_after_the_worker_died_is_handed_back_too() {
        let (mut lane, worker) = open_lane();
        for fd in fds(5).0 {
            lane.enqueue(fd);
        }
        assert!(lane.next_send().is_some());
        drop(worker);
        lane.mark_gone();
        assert!(!lane.can_finish(), "not while the send is in flight");
        let mut out = Vec::new();
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert!(lane.can_finish());
        let mut closed = Vec::new();
        lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
        assert!(closed.is_empty(), "never acknowledged");
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn a_failed_send_gives_every_fd_back() {
        let (mut lane, _worker) = open_lane();
        for fd in fds(MAX_FDS + 3).0 {
            lane.enqueue(fd);
        }
        assert!(lane.next_send().is_some());
        let mut out = Vec::new();
        assert_eq!(lane.on_sent(false, &mut out), Sent::Failed);
        assert_eq!(out.len(), MAX_FDS, "the batch that did not go out");
        assert!(lane.can_finish());
        let mut closed = Vec::new();
        lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
        assert!(closed.is_empty());
        assert_eq!(out.len(), MAX_FDS + 3, "and what was still queued");
    }
}
