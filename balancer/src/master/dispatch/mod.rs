//! Connections the master accepts: the mode says whether it accepts and who
//! takes each connection, judged on each worker's routing facts, and the
//! connection joins that worker's lane (whose I/O is `lanes.rs`);
//! connections queued for a worker that stops keeping up, or that a worker
//! declined, go to another one; with no worker able to take them now they
//! are held (up to `--backlog`), and when every worker is out of room they
//! get `503`.
//!
//! Here: the master's part of dispatch and the routes it picks from;
//! `accept.rs` the accept, `route.rs` the pick, `reroute.rs` what is held,
//! given back or queued for a worker that lags, routed again.

mod accept;
mod reroute;
mod route;

use std::os::fd::OwnedFd;
use std::time::Instant;

use ringmaster_engine::channel::MAX_FDS;

use super::fd_limit_log::FdLimitLine;
use super::supervise::{Slot, Worker};
use super::Master;
use crate::modes::{Accepting, Balance, RouteFacts};
use crate::refuse::Refusals;
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
/// the master `waits_for_laggards`, one lags or awaits an ack but has room.
fn may_take_soon(routes: &[usize], waits_for_laggards: bool, facts: &impl Fn(usize) -> RouteFacts) -> bool {
    routes.is_empty() || (waits_for_laggards && !routes.iter().all(|&slot| facts(slot).no_room()))
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
