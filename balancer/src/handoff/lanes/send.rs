//! A lane's connections sent: the next message lent to the master's loop
//! (a batch, a line, or the drain) and what its send's result means.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use ringmaster_engine::channel::{Tag, MAX_FDS};
use ringmaster_engine::monotonic_ns;

use super::{Lane, SEND_RETRY_PAUSE};
use crate::reactor::Lent;

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

impl Lane {
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
}
