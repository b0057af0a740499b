//! A lane is the master's end of one worker's channel plus the connections
//! queued for it: accepted fds wait in `pending`, up to [`MAX_FDS`] go out in
//! one `SCM_RIGHTS` message, and the master closes its copies only once the
//! send has completed. A failed send gives every fd back for another worker.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use ringmaster_engine::channel::{Message, Tag, MAX_FDS};

/// Fds a lane queues before the dispatcher prefers to hold them elsewhere;
/// sized so a burst never reallocates.
const PENDING_CAPACITY: usize = 4096;

/// What a completed send means for the fds it carried.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Delivered: the fds in the output are the master's copies, to close.
    Delivered,
    /// The worker is gone: the fds in the output are undelivered, to route again.
    Failed,
}

/// One worker's channel, seen from the master.
#[derive(Debug)]
pub struct Lane {
    channel: Option<OwnedFd>,
    pending: VecDeque<RawFd>,
    in_flight: Vec<RawFd>,
    message: Box<Message>,
    sending: bool,
    sending_drain: bool,
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
            pending: VecDeque::with_capacity(PENDING_CAPACITY),
            in_flight: Vec::with_capacity(MAX_FDS),
            message: Message::new(),
            sending: false,
            sending_drain: false,
            drain_requested: false,
            epoch: 0,
        }
    }

    /// Attaches a new worker's channel.
    pub fn open(&mut self, channel: OwnedFd) {
        self.epoch = self.epoch.wrapping_add(1);
        self.channel = Some(channel);
        self.drain_requested = false;
        self.sending_drain = false;
    }

    /// True when new connections may be routed here.
    pub fn is_routable(&self) -> bool {
        self.channel.is_some() && !self.drain_requested
    }

    /// True when the lane has a channel (its worker has not been seen to exit).
    pub fn is_open(&self) -> bool {
        self.channel.is_some()
    }

    /// True when no worker uses the lane and nothing is queued or in flight:
    /// it can serve a new worker.
    pub fn is_free(&self) -> bool {
        self.channel.is_none() && !self.sending && self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// Queues an accepted connection for this lane's worker.
    pub fn enqueue(&mut self, fd: RawFd) {
        self.pending.push_back(fd);
    }

    /// Asks the worker to drain once every queued connection is sent; the
    /// channel is closed after that message, which the worker sees as its end.
    pub fn request_drain(&mut self) {
        if self.channel.is_some() {
            self.drain_requested = true;
        }
    }

    /// The next message to send when the lane is idle: the channel fd and the header.
    pub fn next_send(&mut self) -> Option<(RawFd, *const libc::msghdr)> {
        let channel = self.channel.as_ref()?.as_raw_fd();
        if self.sending {
            return None;
        }
        let header = if !self.pending.is_empty() {
            let batch = self.pending.len().min(MAX_FDS);
            self.in_flight.extend(self.pending.drain(..batch));
            self.message.prepare_send(Tag::Connections, &self.in_flight)
        } else if self.drain_requested && !self.sending_drain {
            self.sending_drain = true;
            self.message.prepare_send(Tag::Drain, &[])
        } else {
            return None;
        };
        self.sending = true;
        Some((channel, header))
    }

    /// Records the result of the send in flight; fds to close or re-route go to `out`.
    pub fn on_sent(&mut self, succeeded: bool, out: &mut Vec<RawFd>) -> Sent {
        self.sending = false;
        out.append(&mut self.in_flight);
        if succeeded {
            if self.sending_drain {
                // Everything was sent before Drain: closing tells the worker it is done.
                self.channel = None;
            }
            return Sent::Delivered;
        }
        // The worker is gone: nothing queued here can be delivered.
        self.channel = None;
        out.extend(self.pending.drain(..));
        Sent::Failed
    }

    /// The worker exited: close the channel and hand back what was not sent
    /// (a send in flight reports through [`Lane::on_sent`]).
    pub fn close(&mut self, out: &mut Vec<RawFd>) {
        self.channel = None;
        if !self.sending {
            out.extend(self.pending.drain(..));
        }
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
    use ringmaster_engine::channel::channel_pair;

    #[test]
    fn batches_then_drains_then_closes() {
        let (master, _worker) = channel_pair().expect("socketpair");
        let mut lane = Lane::new();
        lane.open(master);
        for fd in 100..(100 + MAX_FDS as RawFd + 5) {
            lane.enqueue(fd);
        }
        lane.request_drain();
        assert!(!lane.is_routable());
        let mut out = Vec::new();
        assert!(lane.next_send().is_some());
        assert!(lane.next_send().is_none(), "one send at a time");
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert_eq!(out.len(), MAX_FDS);
        out.clear();
        assert!(lane.next_send().is_some());
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert_eq!(out.len(), 5);
        out.clear();
        assert!(lane.next_send().is_some(), "the drain message");
        assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
        assert!(out.is_empty());
        assert!(!lane.is_open());
    }

    #[test]
    fn a_failed_send_gives_every_fd_back() {
        let (master, _worker) = channel_pair().expect("socketpair");
        let mut lane = Lane::new();
        lane.open(master);
        for fd in 0..(MAX_FDS as RawFd + 3) {
            lane.enqueue(fd);
        }
        assert!(lane.next_send().is_some());
        let mut out = Vec::new();
        assert_eq!(lane.on_sent(false, &mut out), Sent::Failed);
        assert_eq!(out.len(), MAX_FDS + 3);
        assert!(!lane.is_routable());
    }
}
