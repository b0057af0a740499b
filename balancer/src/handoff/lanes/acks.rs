//! A lane's acknowledgements: the receive armed on its channel, and the
//! batches the worker acknowledged in its shared slot settled, each once.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ringmaster_engine::channel::Ack;
use ringmaster_engine::shared_acks::SharedAcks;

use super::Lane;

impl Lane {
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
}
