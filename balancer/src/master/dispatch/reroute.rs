//! Connections routed again: what is held, what a lane gave back, what is
//! queued for a worker that stops keeping up; held ones refused at a stop.

use std::io;
use std::time::Instant;

use super::{count_passed_over, may_take_soon};
use crate::master::Master;

impl Master {
    /// Routes connections held while no worker could take them: to a worker
    /// that takes now, or, once no worker may take them soon (every one out
    /// of room by its own count, after the acks the hold waited for), to a
    /// `503`. Held is for a moment; a full worker may stay full for as long
    /// as its clients stay.
    pub(in crate::master) fn route_held(&mut self) {
        if self.dispatch.held.is_empty() {
            return;
        }
        // The routes and the rule `route` goes by.
        let (steers, waits_for_laggards) = self.prepare_routing();
        let judge = self.judge(Instant::now());
        let facts = |slot| judge.facts(slot);
        let routes = if steers { &self.dispatch.steered_to } else { &self.dispatch.routes };
        let settled =
            routes.iter().any(|&slot| facts(slot).takes()) || !may_take_soon(routes, waits_for_laggards, &facts);
        if !settled {
            return;
        }
        let mut held = std::mem::take(&mut self.dispatch.held);
        for fd in held.drain(..) {
            self.route(fd);
        }
        // `route` may hold some again (`reuseport --steer load` picks among
        // the workers its program steers to, none while a new master's maps
        // cannot hold the listeners yet): those are in the fresh vector, and
        // dropping them would reset their clients. Each was counted as it
        // was first held.
        self.counts.held = self.counts.held.saturating_sub(self.dispatch.held.len() as u64);
        held.append(&mut self.dispatch.held);
        self.dispatch.held = held;
    }

    /// Hands the connections queued for the worker in `slot` to others: it
    /// stopped keeping up, or is retiring. Only its batch in flight waits for it.
    /// Each was its own by the mode's rule: counted as passed over.
    pub(in crate::master) fn reroute_queue_of(&mut self, slot: usize) {
        let queued = self.slots[slot].lane.queued() as u64;
        count_passed_over(&self.slots, &mut self.workers, slot, queued);
        self.slots[slot].lane.take_queued(&mut self.dispatch.scratch);
        self.reroute_scratch();
    }

    /// Re-routes what is queued for routes that no longer take (stalled,
    /// full, declining, draining): the master still owns those connections.
    pub(in crate::master) fn reroute_lagging(&mut self, now: Instant) {
        for i in 0..self.dispatch.routes.len() {
            let slot = self.dispatch.routes[i];
            if self.slots[slot].lane.queued() == 0 {
                continue;
            }
            if !self.judge(now).facts(slot).takes() {
                self.reroute_queue_of(slot);
            }
        }
    }

    /// Refuses every held connection (the master is stopping).
    pub(in crate::master) fn refuse_held(&mut self) {
        let now = Instant::now();
        for fd in self.dispatch.held.drain(..) {
            self.dispatch.refused += 1;
            self.dispatch.refusals.refuse(fd, now);
        }
    }

    /// Routes the connections in `scratch` again (a lane gave them back).
    pub(in crate::master) fn reroute_scratch(&mut self) {
        let mut undelivered = std::mem::take(&mut self.dispatch.scratch);
        self.counts.rerouted += undelivered.len() as u64;
        for fd in undelivered.drain(..) {
            self.route(fd);
        }
        self.dispatch.scratch = undelivered;
    }

    /// Closes the master's copies in `scratch`: a worker adopted them.
    pub(in crate::master) fn close_scratch(&mut self) -> io::Result<()> {
        let mut adopted = std::mem::take(&mut self.dispatch.scratch);
        self.dispatch.closed_since_out_of_fds += adopted.len();
        let closed = adopted.drain(..).try_for_each(|fd| self.reactor.close(fd));
        self.dispatch.scratch = adopted;
        closed
    }
}
