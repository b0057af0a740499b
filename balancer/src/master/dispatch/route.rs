//! The pick: an accepted connection to the worker the mode picks, held or
//! refused when none can take it; the routes a mode that steers prefers.

use std::os::fd::OwnedFd;
use std::time::Instant;

use super::{count_passed_over, may_take_soon};
use crate::bpf::program::STALLED;
use crate::master::judge::Judge;
use crate::master::Master;
use crate::modes::Accepting;

impl Master {
    /// Gives an accepted connection to the worker the mode picks. With none
    /// to pick it is held while some worker may take it soon (none ready
    /// yet, or, unless the workers share one listener, one that lags but
    /// has room), and refused (`503`) when every worker is out of room (in
    /// `shared` the master accepts only then) or the master is stopping. A
    /// mode whose workers have listeners of their own has the master route
    /// only what it took from one of those queues (of a stalled or full
    /// worker, or of one scaled away): to a worker it steers to, if it steers.
    pub(in crate::master) fn route(&mut self, fd: OwnedFd) {
        let (steers, waits_for_laggards) = self.prepare_routing();
        // Field by field, not `self.judge`: the pick borrows `self.workers`.
        let (max_conns, lame_ducks_serve) = (self.config.engine.max_conns, self.dispatch.lame_ducks_serve);
        let judge = Judge::new(&self.slots, &self.stats, max_conns, lame_ducks_serve, Instant::now())
            .for_pick(self.dispatch.balance.weighs_delay());
        let routes = if steers { &self.dispatch.steered_to } else { &self.dispatch.routes };
        let facts = |slot| judge.facts(slot);
        let (slots, workers) = (&self.slots, &mut self.workers);
        let mut passed_over = |slot: usize| count_passed_over(slots, workers, slot, 1);
        match self.dispatch.balance.pick(routes, &facts, &mut passed_over) {
            Some(slot) => {
                self.counts.handed_over += 1;
                self.slots[slot].lane.enqueue(fd);
            }
            None if self.stopping.is_none() && may_take_soon(routes, waits_for_laggards, &facts) => {
                self.counts.held += 1;
                self.dispatch.held.push(fd);
            }
            None => {
                self.dispatch.refused += 1;
                self.dispatch.refusals.refuse(fd, Instant::now());
            }
        }
    }

    /// A route for one more connection when the master must place it now
    /// (a stop's last hand-off, `last_hand_off.rs`): the mode's pick if a
    /// route takes, else, of those with room by their own count (lagging,
    /// awaiting an ack, draining or a lame duck as they may be), the first
    /// by [`RouteFacts::last_resort_rank`]: a worker whose loop turns before
    /// one that stands still, whatever each has outstanding (a stopped
    /// worker has few, and what it is handed waits until it is killed).
    pub(in crate::master) fn pick_with_room(&mut self) -> Option<usize> {
        // Field by field, not `self.judge`: the pick borrows `self.workers`.
        let (max_conns, lame_ducks_serve) = (self.config.engine.max_conns, self.dispatch.lame_ducks_serve);
        let judge = Judge::new(&self.slots, &self.stats, max_conns, lame_ducks_serve, Instant::now())
            .for_pick(self.dispatch.balance.weighs_delay());
        let facts = |slot| judge.facts(slot);
        let routes = &self.dispatch.routes;
        let (slots, workers) = (&self.slots, &mut self.workers);
        let mut passed_over = |slot: usize| count_passed_over(slots, workers, slot, 1);
        if let Some(slot) = self.dispatch.balance.pick(routes, &facts, &mut passed_over) {
            return Some(slot);
        }
        routes
            .iter()
            .map(|&slot| (slot, facts(slot)))
            .filter(|(_, f)| !f.no_room())
            .min_by_key(|(_, f)| f.last_resort_rank())
            .map(|(slot, _)| slot)
    }

    /// Readies what `route` goes by: whether the mode steers (then
    /// `steered_to` is refreshed, and picks are among those), and whether a
    /// worker that lags but has room is worth holding a connection for:
    /// always, but where the workers share one listener. There the master
    /// accepts only to answer `503` while every worker is full, and its mode
    /// picks no worker. Elsewhere the master routes what it accepted, or
    /// took from a worker's queue (until 2026-12-08 that was refused when
    /// the one worker left lagged: `reuseport --steer hash` answered a
    /// scaled-away worker's queue with `503` while the other was busy).
    pub(super) fn prepare_routing(&mut self) -> (bool, bool) {
        let steers = self.dispatch.balance.steer_every().is_some();
        if steers {
            self.refresh_steered_to();
        }
        (steers, self.dispatch.balance.accepting() != Accepting::SharedListener)
    }

    /// Puts in `steered_to` the routes whose worker the mode steers
    /// connections to now (neither stalled nor unavailable to it).
    fn refresh_steered_to(&mut self) {
        let dispatch = &mut self.dispatch;
        dispatch.steered_to.clear();
        for &slot in &dispatch.routes {
            let worker = self.slots[slot].process.as_ref().map(|p| p.worker);
            let load = worker.and_then(|worker| dispatch.balance.steer_view(worker)).map(|view| view.load);
            if load.is_some_and(|load| load < STALLED) {
                dispatch.steered_to.push(slot);
            }
        }
    }
}
