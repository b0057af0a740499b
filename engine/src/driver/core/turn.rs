//! The loop's life as both drivers run it: ready, each turn begun (the
//! counters published, the heartbeat moved, an injected stall run), the
//! clock moved on waking and after a handler's work, whether a tick judges
//! deadlines, the drain begun, published and told to every connection, and
//! the end.

use super::{Core, StallDue};
use crate::config::StallStart;
use crate::conn::Connection;
use crate::slab::Slab;
use crate::stats::{STATE_DRAINING, STATE_READY, STATE_STOPPED};
use crate::sys::now_ms;

/// Ticks further apart than this: the loop stood still between them.
const STOOD_STILL_MS: u64 = 3 * crate::driver::TICK.as_millis() as u64;
/// The longest ticks leave deadlines to the next after stands-still in a row.
const DEADLINES_DEFERRED_MS: u64 = 10_000;

impl Core<'_> {
    /// Called by each tick: whether it may close connections whose deadline
    /// has passed. Not the first tick after the loop stood still (a handler
    /// that blocked, a stopped or starved process): what clients sent
    /// meanwhile is not read yet, and a request that came in time would be
    /// taken for a silence (until 2026-12-06 a keep-alive client's next
    /// request, or the end of a head, sent in time while another
    /// connection's handler blocked the worker past that deadline, got a
    /// close and no answer, on both backends). The loop reads first; the
    /// next tick judges. At most [`DEADLINES_DEFERRED_MS`] in a row: a loop
    /// that stands still between every tick (a handler slow on every
    /// request, a starved machine) still times its connections out.
    pub(in crate::driver) fn deadlines_due(&mut self) -> bool {
        let since = self.now.saturating_sub(self.last_tick);
        self.last_tick = self.now;
        let due = since < STOOD_STILL_MS || self.now.saturating_sub(self.last_judged) >= DEADLINES_DEFERRED_MS;
        if due {
            self.last_judged = self.now;
        }
        due
    }

    pub(in crate::driver) fn ready(&mut self) {
        self.counters.set_state(STATE_READY);
        // Its loop runs from here: a connection that waits on it before its
        // first wake-up is not waiting on a stalled worker.
        if let Some(tally) = &self.sources.accept_tally {
            tally.turned_now();
        }
        self.stall_due = self.config.faults.stall.map(|(start, _)| match start {
            StallStart::AfterReady(after) => StallDue::At(self.now + after.as_millis() as u64),
            StallStart::AfterRequests(requests) => StallDue::Requests(requests),
        });
    }

    /// The start of a loop turn, `live` connections open: the counters are
    /// published (the heartbeat moves) and an injected stall runs when due.
    /// False when the loop should end instead: drained, or out of time to.
    pub(in crate::driver) fn begin_turn(&mut self, live: usize) -> bool {
        self.publish(live);
        if self.finished(live) {
            return false;
        }
        self.stall_if_due();
        true
    }

    /// Injected faults: the one-time stall, when due (called once per loop turn).
    fn stall_if_due(&mut self) {
        let Some((due, (_, stall))) = self.stall_due.zip(self.config.faults.stall) else { return };
        let now_due = match due {
            StallDue::At(at) => self.now >= at,
            StallDue::Requests(requests) => self.counts.requests >= requests,
        };
        if now_due {
            self.stall_due = None;
            std::thread::sleep(stall);
            self.now = now_ms();
        }
    }

    /// After a connection's input was answered (`requests` of them):
    /// injected faults spend the time a slow handler would, and where a
    /// handler (or that fault) ran the clock moves on, so that what the
    /// connection does next is timed from now, not from when the loop woke.
    /// Until 2026-12-06 a keep-alive connection whose own answer took the
    /// handler longer than `--idle-timeout` had its idle clock counted from
    /// before the handler ran: on epoll it was closed at the next tick,
    /// 0-100 ms after its answer, and a next request sent within the idle
    /// timeout got no answer. (A coarse clock read, a few ns, per read
    /// that the handler answered.)
    pub(in crate::driver) fn work_for(&mut self, requests: u32) {
        if requests == 0 {
            return;
        }
        if let Some(per_request) = self.config.faults.per_request {
            let until = std::time::Instant::now() + per_request * requests;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            self.now = now_ms();
        } else if !self.fixed {
            self.now = now_ms();
        }
    }

    /// Publishes the counters once per loop turn (the heartbeat moves).
    pub(super) fn publish(&mut self, live: usize) {
        self.idle.advance(self.now);
        self.counts.capacity = self.capacity_now();
        self.counts.live = live as u64;
        self.counts.reclaimable = self.reclaimable() as u64;
        self.counts.handler_panics = self.scratch.panics();
        self.counts.heartbeat += 1;
        self.counters.store(&self.counts);
    }

    /// The loop woke from its wait: the clock moves, and the accept tally
    /// notes that the loop turns (else a worker woken by a connection after
    /// a long wait would seem stalled until the end of its turn).
    pub(in crate::driver) fn woke(&mut self) {
        self.now = now_ms();
        if let Some(tally) = &self.sources.accept_tally {
            tally.turned_now();
        }
    }

    /// True when the loop should end: drained, or out of time to.
    fn finished(&self, live: usize) -> bool {
        self.draining && ((live == 0 && !self.channel_open) || self.now >= self.drain_deadline)
    }

    pub(in crate::driver) fn stopped(&mut self) {
        self.counts.live = 0;
        self.counters.store(&self.counts);
        self.counters.set_state(STATE_STOPPED);
    }

    /// Begins the drain; false when it had begun already. The driver says
    /// so ([`Core::publish_drain`]) once it has let go of its own listener.
    pub(in crate::driver) fn start_drain(&mut self) -> bool {
        if self.draining {
            return false;
        }
        self.draining = true;
        self.drain_deadline = self.now + self.config.drain_timeout.as_millis() as u64;
        true
    }

    /// Says in the stats block that the drain has begun, once the worker has
    /// taken what waited on its own listener (`reuseport`) and let go of it:
    /// from then on the master, which keeps a retired slot's listener,
    /// takes what comes there and closes it.
    pub(in crate::driver) fn publish_drain(&self) {
        self.counters.set_state(STATE_DRAINING);
    }

    /// Tells every connection in `conns` (each driver's slots, the
    /// connection in each reached by `conn_of`) that the worker drains.
    pub(in crate::driver) fn drain_connections<S>(
        &mut self,
        conns: &mut Slab<S>,
        conn_of: impl Fn(&mut S) -> &mut Connection,
    ) {
        for slot in 0..conns.high_water() {
            let Some(generation) = conns.generation(slot) else { continue };
            let Some(entry) = conns.get_mut(slot, generation) else { continue };
            let (_, ctx) = self.parts(slot);
            conn_of(entry).handle_drain(&ctx);
        }
    }
}
