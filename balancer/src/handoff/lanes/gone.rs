//! A dead worker's lane: nothing more sent, its last acknowledgements
//! settled, everything else handed back.

use std::os::fd::OwnedFd;

use ringmaster_engine::shared_acks::SharedAcks;

use super::Lane;

impl Lane {
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
