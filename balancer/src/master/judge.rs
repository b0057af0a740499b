//! The routing facts a mode judges each worker by: its live connections,
//! what is handed over and queued, its room, its heartbeat, its drain.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringmaster_engine::stats::STATE_DRAINING;
use ringmaster_engine::StatsBlock;

use super::supervise::Slot;
use super::Master;
use crate::modes::RouteFacts;

/// What the mode judges the workers by, at one instant.
pub(super) struct Judge<'a> {
    slots: &'a [Slot],
    stats: &'a StatsBlock,
    max_conns: u64,
    /// Every route is a lame duck (the master's drain delay): they take
    /// connections, as there is nobody else to take them.
    lame_ducks_serve: bool,
    /// Work out each worker's recent ack delay (else zero: the mode's pick
    /// does not read it, and the decay costs an `exp`).
    with_delay: bool,
    now: Instant,
}

impl<'a> Judge<'a> {
    /// A judge of the workers in `slots` as they are at `now`, for the
    /// stats, the metrics and the checks outside a pick: every fact.
    pub(super) fn new(
        slots: &'a [Slot],
        stats: &'a StatsBlock,
        max_conns: usize,
        lame_ducks_serve: bool,
        now: Instant,
    ) -> Self {
        Judge { slots, stats, max_conns: max_conns as u64, lame_ducks_serve, with_delay: true, now }
    }

    /// The same judge for a mode's pick: the ack delay only if the mode
    /// weighs it ([`Balance::weighs_delay`](crate::modes::Balance::weighs_delay)).
    pub(super) fn for_pick(self, weighs_delay: bool) -> Self {
        Judge { with_delay: weighs_delay, ..self }
    }

    /// What the mode may know about the worker in `slot`.
    pub(super) fn facts(&self, slot: usize) -> RouteFacts {
        let s = &self.slots[slot];
        let counters = self.stats.slot(slot);
        let now = self.now;
        RouteFacts {
            live: counters.map_or(0, |c| c.live.load(Ordering::Relaxed)),
            // Idle keep-alive connections the worker closes for a new one
            // (one that turned busy before it arrives is declined in the ack).
            reclaimable: counters.map_or(0, |c| c.reclaimable.load(Ordering::Relaxed)),
            unacked: s.lane.handed(),
            queued: s.lane.queued(),
            // Fewer than `--max-conns` when the worker's descriptors run out
            // first: full by that count, it gets no more and, when all are,
            // the master answers `503` (in `shared` mode too, where the
            // workers accept themselves).
            max_conns: counters.map_or(self.max_conns, |c| self.max_conns.min(c.capacity.load(Ordering::Relaxed))),
            declined: s.declined_until.is_some_and(|until| until > now),
            ack_wait: s.lane.ack_wait(now),
            ack_delay: if self.with_delay { s.lane.ack_delay(now) } else { Duration::ZERO },
            heartbeat_age: s
                .process
                .as_ref()
                .map_or(Duration::ZERO, |p| now.saturating_duration_since(p.heartbeat_moved)),
            // A lame duck still serves, but is about to drain: nothing new goes
            // there while a worker that is not one can take it.
            draining: counters.is_some_and(|c| {
                c.state.load(Ordering::Acquire) == STATE_DRAINING || (c.is_lame_duck() && !self.lame_ducks_serve)
            }),
        }
    }
}

impl Master {
    /// The judge of the workers at `now`.
    pub(super) fn judge(&self, now: Instant) -> Judge<'_> {
        Judge::new(&self.slots, &self.stats, self.config.engine.max_conns, self.dispatch.lame_ducks_serve, now)
    }
}
