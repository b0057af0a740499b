//! What the worker can hold: its slots (`--max-conns`, or its open-file
//! limit at start), its capacity (its slots, or its ring's table of direct
//! descriptors, or what its process's descriptors allow), the cap the open-file limit puts on it
//! until a descriptor is free again, and the idle connections a full worker
//! closes to make room.

use std::os::fd::AsFd;

use super::Core;

impl Core<'_> {
    /// Connections the worker can hold while descriptors last.
    pub(in crate::driver) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Connection slots, each with its buffers: `--max-conns`, or the
    /// open-file limit at start when lower.
    pub(in crate::driver) fn slots(&self) -> usize {
        self.slots
    }

    /// Lowers what the worker can hold to `capacity` (its ring's table of
    /// direct descriptors is smaller than its slots), published at once:
    /// it is called before the worker is ready.
    pub(in crate::driver) fn limit_capacity(&mut self, capacity: usize) {
        self.capacity = self.capacity.min(capacity as u64);
        self.counts.capacity = self.capacity;
        self.counters.capacity.store(self.capacity, std::sync::atomic::Ordering::Relaxed);
    }

    /// The worker keeps a descriptor per connection in its process's table
    /// (no ring table): it holds what its open-file limit at start leaves
    /// beside its own (see [`crate::reach::conns_within`]).
    pub(in crate::driver) fn hold_plain_descriptors(&mut self) {
        if let Some(limit) = self.fd_limit {
            self.limit_capacity(crate::reach::conns_within(self.config.max_conns, limit, false));
        }
    }

    /// Where the driver sets up its accepts, with `free` slots left: out
    /// of room at a capacity the open-file limit sized is the worker at its
    /// open-file limit, as an accept failing with `EMFILE` would say
    /// (counted once per filling).
    pub(in crate::driver) fn note_room(&mut self, free: usize) {
        let at_fd_limit = free == 0 && self.capacity() < self.config.max_conns;
        if at_fd_limit && !self.full_at_fd_limit {
            self.counts.fd_limit_hits += 1;
        }
        self.full_at_fd_limit = at_fd_limit;
    }

    /// An accept found no descriptor free with `live` connections open: the
    /// worker is full at that many until the tick finds a descriptor free
    /// again; each connection that closes before then makes room for one.
    pub(in crate::driver) fn hit_fd_limit(&mut self, live: usize) {
        self.counts.fd_limit_hits += 1;
        self.fd_capped = Some(live as u64);
    }

    /// A batch from the master lost fds on the way ([`Batch::short`](super::Batch::short): the
    /// worker at its open-file limit, `rr` and `least`) with `live`
    /// connections open before any idle one was closed for them: full at
    /// that many, as after an accept's `EMFILE` ([`Core::hit_fd_limit`],
    /// the hit counted as the batch was taken). Else the master went on
    /// offering it each new connection, each offer's fds dropped and
    /// handed on again, with the stats showing room (`capacity` at
    /// `--max-conns`) where there was none.
    pub(in crate::driver) fn batch_hit_fd_limit(&mut self, live: usize) {
        self.fd_capped = Some(live as u64);
    }

    /// Once a tick, at the open-file limit: a descriptor free again (a closed
    /// connection's, or a late close's) lifts the cap. Looked for by
    /// duplicating the listener or the channel, closed at once.
    pub(in crate::driver) fn recheck_fd_limit(&mut self) {
        if self.fd_capped.is_none() {
            return;
        }
        let source = self.sources.listener.as_ref().or(self.sources.channel.as_ref());
        if source.is_some_and(|fd| fd.as_fd().try_clone_to_owned().is_ok()) {
            self.fd_capped = None;
        }
    }

    /// Idle connections the worker would close to make room: none while
    /// it drains (it takes nothing new then).
    pub(in crate::driver) fn reclaimable(&self) -> usize {
        if self.draining {
            0
        } else {
            self.idle.aged_len()
        }
    }

    /// On the tick: how many of its longest-idle connections a worker
    /// should close so that it can accept again. Some only when it is full
    /// (no `room` in its slots or table, or at its open-file limit still)
    /// and holds idle ones, and connections have waited on its listener
    /// since the last tick: what waits only a moment is left alone, since in
    /// `shared` mode a worker with room takes it when its loop turns.
    pub(in crate::driver) fn reclaims_due(&mut self, room: usize) -> usize {
        let full = room == 0 || self.fd_capped.is_some();
        if !full || self.reclaimable() == 0 {
            self.full_queue_at_tick = false;
            return 0;
        }
        let Some(listener) = self.sources.listener.as_ref() else { return 0 };
        // A failed look (a signal) only puts it off to the next tick.
        let queue = crate::sys::socket::waiting(listener.as_fd()).unwrap_or(false);
        let waited = queue && self.full_queue_at_tick;
        self.full_queue_at_tick = queue;
        if waited {
            crate::driver::idle::reclaim_batch(self.capacity())
        } else {
            0
        }
    }

    /// What the worker can hold now: its capacity, or what it held when it
    /// found itself at its open-file limit.
    pub(super) fn capacity_now(&self) -> u64 {
        self.fd_capped.map_or(self.capacity, |cap| cap.min(self.capacity))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::Core;
    use crate::channel::channel_pair;
    use crate::config::EngineConfig;
    use crate::driver::Sources;
    use crate::handler::FixedBody;
    use crate::stats::StatsBlock;

    #[test]
    fn out_of_descriptors_the_worker_publishes_itself_full_until_one_is_free() {
        // The master judges "full" by the published capacity: in `shared` mode
        // it answers 503 itself only once every worker shows full.
        let (_master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig { max_conns: 100, ..EngineConfig::default() };
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler).expect("a core");
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 100, "set before the worker is ready");
        core.limit_capacity(64);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 64, "a smaller table of direct descriptors");
        core.hit_fd_limit(23);
        core.publish(23);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 23, "full at what it holds");
        assert_eq!(counters.fd_limit_hits.load(Ordering::Relaxed), 1);
        // This test process has descriptors to spare: the tick lifts the cap.
        core.recheck_fd_limit();
        core.publish(22);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 64);
    }
}
