//! Connections the master accepts: the mode says whether it accepts and who
//! takes each connection, judged on each worker's routing facts, and the
//! connection joins that worker's lane (whose I/O is `lanes.rs`);
//! connections queued for a worker that stops keeping up, or that a worker
//! declined, go to another one; with no worker able to take them now they
//! are held (up to `--backlog`), and when every worker is out of room they
//! get `503`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use ringmaster_engine::channel::MAX_FDS;
use ringmaster_engine::{out_of_fds, out_of_resources};

use super::fd_limit_log::FdLimitLine;
use super::judge::Judge;
use super::supervise::{Slot, Worker};
use super::{Master, Op};
use crate::bpf::program::STALLED;
use crate::modes::{Accepting, Balance, RouteFacts};
use crate::refuse::Refusals;
use crate::rlimit::fd_limit_text;
use crate::stats_line::Routing;

/// Room for connections in the master's hands before a burst makes it grow.
const HELD_CAPACITY: usize = 1024;

/// The dispatch's state.
#[derive(Debug)]
pub(super) struct Dispatch {
    pub(super) balance: Box<dyn Balance>,
    /// Slots that take connections now, in worker order.
    pub(super) routes: Vec<usize>,
    /// Of those, the ones a mode that steers sends connections to now.
    steered_to: Vec<usize>,
    /// Every route is a lame duck (the master's drain delay, when all of
    /// them are): they are dealt connections as any other worker. Else a
    /// lame duck is skipped for the others.
    pub(super) lame_ducks_serve: bool,
    /// Accepted connections no worker can take yet: kept, never dropped.
    held: Vec<OwnedFd>,
    /// Connections a lane gave back, to close or to route again.
    pub(super) scratch: Vec<OwnedFd>,
    /// Connections a worker declined, to route elsewhere.
    pub(super) declined: Vec<OwnedFd>,
    /// Connections refused with `503` because no worker could take them.
    pub(super) refused: u64,
    /// Those refused lately, kept open a moment before their close.
    refusals: Refusals,
    /// The multishot accept is armed.
    pub(super) accepting: bool,
    /// The last accept ended at the open-file limit: accepting waits for a
    /// number to come free ([`Master::accept_again_after_closes`]).
    pub(super) out_of_fds: bool,
    /// Connections of workers' acks closed since then: numbers come free.
    pub(super) closed_since_out_of_fds: usize,
    /// When the last fd-limit line of each kind was logged (rate limit).
    pub(super) fd_limit_logged: [Option<Instant>; FdLimitLine::KINDS],
}

impl Dispatch {
    /// Answers `connection` with `503` and counts it: no worker can take it.
    pub(super) fn refuse(&mut self, connection: OwnedFd, now: Instant) {
        self.refused += 1;
        self.refusals.refuse(connection, now);
    }

    /// Frees a descriptor by closing the refused connection that has
    /// lingered longest ([`Refusals::close_oldest`]); false when none lingers.
    pub(super) fn close_oldest_refusal(&mut self) -> bool {
        self.refusals.close_oldest()
    }

    /// Some refused connection lingers before its close ([`Refusals::lingering`]).
    pub(super) fn refusals_linger(&self) -> bool {
        self.refusals.lingering()
    }

    /// Connections held now, waiting for a ready worker.
    pub(super) fn held_now(&self) -> usize {
        self.held.len()
    }

    /// Takes the held connections out, to place them elsewhere; those held
    /// again meanwhile ([`Dispatch::hold`]) join the vector as it comes
    /// back ([`Dispatch::give_back_held`]).
    pub(super) fn take_held(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.held)
    }

    /// Holds `fd` again.
    pub(super) fn hold(&mut self, fd: OwnedFd) {
        self.held.push(fd);
    }

    /// Puts back the vector [`Dispatch::take_held`] took (its room kept).
    pub(super) fn give_back_held(&mut self, mut held: Vec<OwnedFd>) {
        held.append(&mut self.held);
        self.held = held;
    }

    pub(super) fn new(balance: Box<dyn Balance>) -> Dispatch {
        Dispatch {
            balance,
            routes: Vec::with_capacity(super::MAX_SLOTS),
            steered_to: Vec::with_capacity(super::MAX_SLOTS),
            lame_ducks_serve: false,
            held: Vec::with_capacity(HELD_CAPACITY),
            scratch: Vec::with_capacity(HELD_CAPACITY),
            declined: Vec::with_capacity(MAX_FDS),
            refused: 0,
            refusals: Refusals::new(),
            accepting: false,
            out_of_fds: false,
            closed_since_out_of_fds: 0,
            fd_limit_logged: [None; FdLimitLine::KINDS],
        }
    }
}

/// With no worker to pick now, whether one may take a connection soon, so
/// that it is held rather than refused: no worker is ready yet, or, when
/// the master hands connections over, one lags or awaits an ack but has room.
fn may_take_soon(routes: &[usize], hands_over: bool, facts: &impl Fn(usize) -> RouteFacts) -> bool {
    routes.is_empty() || (hands_over && !routes.iter().all(|&slot| facts(slot).no_room()))
}

/// Counts `n` connections that went elsewhere (or were held) while they
/// were, by the mode's rule, for the worker whose process is in `slot`: on
/// the worker, so that the count adds up over its restarts.
fn count_passed_over(slots: &[Slot], workers: &mut [Worker], slot: usize, n: u64) {
    let Some(id) = slots[slot].process.as_ref().map(|p| p.worker) else { return };
    if let Some(worker) = workers.iter_mut().find(|w| w.id == id) {
        worker.passed_over += n;
    }
}

impl Master {
    /// Rebuilds the list of slots that take connections: ready, not retiring,
    /// in worker order; and notes whether they are all lame ducks. Called
    /// whenever a process is ready, retires, goes, or is made a lame duck.
    pub(super) fn refresh_routes(&mut self) {
        let routes = &mut self.dispatch.routes;
        routes.clear();
        for worker in &self.workers {
            let Some(slot) = worker.slot else { continue };
            let s = &self.slots[slot];
            if s.process.as_ref().is_some_and(|p| p.ready && !p.retiring) && s.lane.is_routable() {
                routes.push(slot);
            }
        }
        let lame = |slot: usize| self.stats.slot(slot).is_some_and(|c| c.is_lame_duck());
        self.dispatch.lame_ducks_serve = routes.iter().all(|&slot| lame(slot));
    }

    fn master_accepts(&self) -> bool {
        let judge = self.judge(Instant::now());
        self.dispatch.balance.master_accepts(&self.dispatch.routes, &|slot| judge.facts(slot))
    }

    /// True while the master may take a connection off a queue: its own
    /// listener's (`arm_accept`), or a stalled or full worker's (`steer`).
    /// Not while it is stopping: no worker takes one then. Not while it holds
    /// `--backlog` connections no worker could take yet: past that, new ones
    /// wait in the kernel's queue instead of costing descriptors here. Not
    /// while its fd reserve lacks what a start needs (`fd_reserve.rs`): at
    /// the open-file limit a take would get each number a close gives back
    /// before the reserve could, and hold it while the worker it waits for
    /// cannot be restarted.
    pub(super) fn may_take_connections(&self) -> bool {
        self.connections_it_may_take() > 0
    }

    /// How many connections the master may take off queues now: none while
    /// it may not ([`Master::may_take_connections`]), else what `--backlog`
    /// leaves beside those it holds. The same measure as `on_accept`'s: a
    /// connection routed straight into a worker's lane is not held, one no
    /// worker can take yet is; a take of this many keeps the master within
    /// `--backlog` even if none finds a worker.
    pub(super) fn connections_it_may_take(&self) -> usize {
        if self.stopping.is_some() || !self.fd_reserve.enough_for_a_start() {
            return 0;
        }
        (self.config.backlog as usize).saturating_sub(self.dispatch.held.len())
    }

    /// Arms the multishot accept when the mode wants the master to accept
    /// (and cancels it when it no longer does).
    pub(super) fn arm_accept(&mut self) -> io::Result<()> {
        if !self.master_accepts() {
            // `shared`: a worker has room again; it accepts from here on.
            if self.dispatch.accepting {
                self.reactor.cancel(Op::Accept.token(0, 0))?;
            }
            return Ok(());
        }
        if self.dispatch.accepting || !self.may_take_connections() || !self.upgrades.lets_accept() {
            return Ok(());
        }
        self.reactor.accept(self.listener.as_raw_fd(), Op::Accept.token(0, 0))?;
        self.dispatch.accepting = true;
        Ok(())
    }

    pub(super) fn on_accept(&mut self, result: i32, more: bool, accepted: Option<OwnedFd>) -> io::Result<()> {
        if !more {
            self.dispatch.accepting = false;
        }
        if let Some(connection) = accepted {
            self.counts.accepted += 1;
            // What the master holds came first: it takes the room a worker
            // has now before this one does (until 2026-12-06 the accept that
            // woke the master took it, and what was held could wait out the
            // whole stall of a worker that never had it).
            self.route_held();
            self.route(connection);
            if self.dispatch.accepting && self.dispatch.held.len() >= self.config.backlog as usize {
                self.reactor.cancel(Op::Accept.token(0, 0))?;
            }
        }
        if out_of_fds(-result) {
            (self.dispatch.out_of_fds, self.dispatch.closed_since_out_of_fds) = (true, 0);
            let held = self.dispatch.held.len() + self.slots.iter().map(|s| s.lane.held_fds()).sum::<usize>();
            self.log_fd_limit(
                FdLimitLine::Accepting,
                format_args!(
                    "the master is at its open-file limit ({}): accepting pauses; it holds {held} connections \
                 not yet taken by a worker",
                    fd_limit_text()
                ),
            );
        }
        // Out of fds or memory: the tick re-arms rather than spinning now;
        // out of fds, so does a turn that closed connections (below).
        if !self.dispatch.accepting && !out_of_resources(-result) {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Gives an accepted connection to the worker the mode picks. With none
    /// to pick it is held while some worker may take it soon (none ready
    /// yet, or, when the master hands connections over, one that lags but
    /// has room), and refused (`503`) when every worker is out of room (a
    /// mode whose workers accept has the master accept only then) or the
    /// master is stopping. A mode that steers has the master route only what
    /// it took from the queue of a stalled or full worker: to a worker it steers to.
    pub(super) fn route(&mut self, fd: OwnedFd) {
        let (steers, hands_over) = self.prepare_routing();
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
            None if self.stopping.is_none() && may_take_soon(routes, hands_over, &facts) => {
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
    pub(super) fn pick_with_room(&mut self) -> Option<usize> {
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
    /// `steered_to` is refreshed, and picks are among those), and whether the
    /// master hands connections over (then a worker that lags but has room
    /// is worth holding a connection for).
    fn prepare_routing(&mut self) -> (bool, bool) {
        let steers = self.dispatch.balance.steer_every().is_some();
        if steers {
            self.refresh_steered_to();
        }
        (steers, steers || self.dispatch.balance.accepting() == Accepting::Master)
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

    /// Routes connections held while no worker could take them: to a worker
    /// that takes now, or, once no worker may take them soon (every one out
    /// of room by its own count, after the acks the hold waited for), to a
    /// `503`. Held is for a moment; a full worker may stay full for as long
    /// as its clients stay.
    pub(super) fn route_held(&mut self) {
        if self.dispatch.held.is_empty() {
            return;
        }
        // The routes and the rule `route` goes by.
        let (steers, hands_over) = self.prepare_routing();
        let judge = self.judge(Instant::now());
        let facts = |slot| judge.facts(slot);
        let routes = if steers { &self.dispatch.steered_to } else { &self.dispatch.routes };
        let settled = routes.iter().any(|&slot| facts(slot).takes()) || !may_take_soon(routes, hands_over, &facts);
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
    pub(super) fn reroute_queue_of(&mut self, slot: usize) {
        let queued = self.slots[slot].lane.queued() as u64;
        count_passed_over(&self.slots, &mut self.workers, slot, queued);
        self.slots[slot].lane.take_queued(&mut self.dispatch.scratch);
        self.reroute_scratch();
    }

    /// Re-routes what is queued for routes that no longer take (stalled,
    /// full, declining, draining): the master still owns those connections.
    pub(super) fn reroute_lagging(&mut self, now: Instant) {
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
    pub(super) fn refuse_held(&mut self) {
        let now = Instant::now();
        for fd in self.dispatch.held.drain(..) {
            self.dispatch.refused += 1;
            self.dispatch.refusals.refuse(fd, now);
        }
    }

    /// Routes the connections in `scratch` again (a lane gave them back).
    pub(super) fn reroute_scratch(&mut self) {
        let mut undelivered = std::mem::take(&mut self.dispatch.scratch);
        self.counts.rerouted += undelivered.len() as u64;
        for fd in undelivered.drain(..) {
            self.route(fd);
        }
        self.dispatch.scratch = undelivered;
    }

    /// Closes the master's copies in `scratch`: a worker adopted them.
    pub(super) fn close_scratch(&mut self) -> io::Result<()> {
        let mut adopted = std::mem::take(&mut self.dispatch.scratch);
        self.dispatch.closed_since_out_of_fds += adopted.len();
        let closed = adopted.drain(..).try_for_each(|fd| self.reactor.close(fd));
        self.dispatch.scratch = adopted;
        closed
    }

    /// At the end of a loop turn, after the fd reserve took back what it
    /// needs: an accept paused at the open-file limit starts again once
    /// connections the workers acknowledged were closed (their numbers are
    /// free by the time the accept runs: the ring runs the closes first, in
    /// order), not only at the next tick. Else the master accepted at most
    /// what its table holds per tick: 2 workers, `RLIMIT_NOFILE` 48, 74
    /// clients under churn served 1,715 connections in 8 s against 33,713
    /// at the usual limit. An accept that finds none free again pauses
    /// again, until more are closed: no spinning.
    pub(super) fn accept_again_after_closes(&mut self) -> io::Result<()> {
        if !self.dispatch.out_of_fds || self.dispatch.closed_since_out_of_fds == 0 {
            return Ok(());
        }
        self.dispatch.out_of_fds = false;
        self.arm_accept()
    }

    /// What routing sees of a worker's process in `slot` (`None`: it has
    /// none running, so nothing is handed, queued or lagging), when the
    /// master hands connections over (`rr`, `least`), with the worker's
    /// `passed_over` count: for the stats and the metrics. Shown for a worker
    /// between processes too, so that its counter never leaves the page.
    pub(super) fn routing_of(&self, slot: Option<usize>, passed_over: u64) -> Option<Routing> {
        if self.dispatch.balance.accepting() != Accepting::Master {
            return None;
        }
        let Some(slot) = slot else { return Some(Routing { passed_over, ..Routing::default() }) };
        let facts = self.judge(Instant::now()).facts(slot);
        Some(Routing {
            unacked: facts.unacked as u64,
            queued: facts.queued as u64,
            lagging: facts.stalled(),
            passed_over,
            ack_delay_us: facts.ack_delay.as_micros() as u64,
        })
    }

    /// Closes the refused connections whose moment has passed.
    pub(super) fn close_refused(&mut self) {
        self.dispatch.refusals.close_due(Instant::now());
    }
}
