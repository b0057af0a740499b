//! `--steer load`'s arithmetic: what was seen of each slot at the last
//! look, the load written to the program's map for it, how far its count
//! strayed from its accept queue, and what waits beyond a worker's room.

use std::time::{Duration, Instant};

use super::super::{RouteFacts, SlotFacts, ACK_GRACE};
use crate::bpf::program::{AVAILABLE_MAX, STALLED, UNAVAILABLE};

/// Looks at a slot's counts over which they are evened out with its accept
/// queue: 100 ms, long beside a loopback handshake, short beside a client's
/// SYN retry.
pub(super) const FLOW_WINDOW: u32 = 20;

/// One look at a worker slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sample {
    pub(super) accepted: u64,
    /// Since when its queue has waited with nothing accepted.
    pub(super) waiting_since: Option<Instant>,
    /// How far the program's count of what waits strayed from the queue.
    pub(super) drift: Drift,
    /// The master took what waited in its queue, and its loop has not
    /// turned since: it is stalled still, though its queue is empty.
    pub(super) passed_over: Option<PassedOver>,
    /// Connections the master took from its queue so far.
    pub(super) rescued: u64,
}

/// A worker whose queue the master took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PassedOver {
    /// When its loop last turned, as it noted it, when the master took
    /// them (nanoseconds on `CLOCK_MONOTONIC`): a turn since moves it.
    pub(super) turned_at: u64,
    /// When the master first took from its queue.
    pub(super) since: Instant,
}

/// How far the program's count of what waits on a listener (`sent -
/// accepted`) strayed from its accept queue, over a window of looks. A
/// handshake in flight, or an accept between the two reads, make them differ
/// for a moment; a SYN the kernel dropped after the program counted it, or a
/// connection the kernel's hash placed, for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Drift {
    looks: u32,
    least: i64,
    most: i64,
}

impl Drift {
    /// Records a look that found the count `excess` above the queue; at the
    /// end of a window, the correction to add to the accepted count: the
    /// excess every look in it saw, never what moved in between.
    pub(super) fn look(&mut self, excess: i64) -> Option<i64> {
        if self.looks == 0 {
            (self.least, self.most) = (excess, excess);
        }
        (self.least, self.most) = (self.least.min(excess), self.most.max(excess));
        self.looks += 1;
        if self.looks < FLOW_WINDOW {
            return None;
        }
        let correction = if self.least > 0 {
            self.least
        } else if self.most < 0 {
            self.most
        } else {
            0
        };
        *self = Drift::default();
        (correction != 0).then_some(correction)
    }
}

/// The load the master gives the program for a slot: its live connections
/// (the program adds what waits in its queue, counted as it goes);
/// [`UNAVAILABLE`] when its process is not ready, drains or has no room for
/// what waits. When it seems stalled (its heartbeat is stale, or its queue
/// has `waited` past [`ACK_GRACE`], the patience `rr` has with a batch, with
/// nothing accepted): [`STALLED`] plus how long it has waited, in
/// milliseconds, so that on a busy machine where every worker seems stalled
/// for a moment the one stalled longest is avoided.
pub(super) fn steer_load(facts: &SlotFacts, queue: u32, waited: Duration) -> u32 {
    let Some(route) = facts.route else { return UNAVAILABLE };
    if route.draining || route.no_room() || route.held() + u64::from(queue) >= route.max_conns {
        return UNAVAILABLE;
    }
    let waited = if route.stalled() { waited.max(route.heartbeat_age) } else { waited };
    if route.stalled() || waited > ACK_GRACE {
        return stalled_for(waited);
    }
    route.live.min(u64::from(STALLED - 1)) as u32
}

/// The load of a worker passed over since `since` (the master took its
/// queue; its loop has not turned since): stalled, by how long, unless it
/// is already unavailable or stalled longer.
pub(super) fn passed_over_load(load: u32, since: Duration) -> u32 {
    if load == UNAVAILABLE {
        load
    } else {
        load.max(stalled_for(since))
    }
}

/// [`STALLED`] plus the milliseconds a worker has seemed stalled, so that of
/// two that seem stalled the one stalled longer is avoided.
pub(super) fn stalled_for(waited: Duration) -> u32 {
    STALLED + (waited.as_millis().min(u128::from(STALLED - 1)) as u32)
}

/// Of `queue` connections waiting on a worker that is not stalled, those
/// beyond its room: all when it has none (full or declining, by its own
/// count), else what would take it past `--max-conns`.
pub(super) fn beyond_room(route: &RouteFacts, queue: u32) -> u32 {
    if route.no_room() {
        return queue;
    }
    let over = (route.held() + u64::from(queue)).saturating_sub(route.max_conns);
    over.min(u64::from(queue)) as u32
}

/// How many connections taken from other queues a worker that takes can be
/// handed this round: its room, less what it has or is about to get (handed
/// over, queued in the master) and what waits on its own listener, which it
/// accepts itself. Taking more than the takers' room together would only
/// have the master refuse (`503`) what it cannot hand on, where it could
/// have waited in its queue for room.
pub(super) fn room_for_rescue(route: &RouteFacts, own_queue: u32) -> u64 {
    let taking = route.held() + route.unacked as u64 + route.queued as u64;
    route.max_conns.saturating_sub(taking + u64::from(own_queue))
}

/// True for a load that says the worker is stalled (not merely unavailable).
pub(super) fn is_stalled(load: u32) -> bool {
    (STALLED..=AVAILABLE_MAX).contains(&load)
}

/// When a queue of `queue` seen now has waited since, after `last`: not at
/// all when empty, from now when the worker accepted something since.
pub(super) fn waiting_since(last: Option<&Sample>, queue: u32, accepted: u64, now: Instant) -> Option<Instant> {
    match last {
        _ if queue == 0 => None,
        Some(last) if last.accepted == accepted => Some(last.waiting_since.unwrap_or(now)),
        _ => Some(now),
    }
}
