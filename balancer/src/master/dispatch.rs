//! Connections the master accepts: the mode says whether it accepts and who
//! takes each connection; lanes carry them to workers (one `sendmsg` per
//! batch, the acknowledgement settling it); connections a worker declined go
//! to another one and that worker is skipped for a while; with no worker
//! ready they are held (up to `--backlog`), and when none can take one it
//! gets `503`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringmaster_engine::channel::MAX_FDS;
use ringmaster_engine::{out_of_fds, out_of_resources, StatsBlock};

use super::supervise::Slot;
use super::{Master, Op};
use crate::handoff::{read_leftover_ack, Sent};
use crate::modes::{Balance, RouteFacts};
use crate::refuse::refuse;
use crate::rlimit::fd_limit_text;

/// How long a worker that declined connections (full, or out of fds) is
/// skipped before it is offered new ones.
const DECLINED_PAUSE: Duration = Duration::from_millis(100);
/// Least time between two log lines about running out of file descriptors.
const FD_LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Room for connections in the master's hands before a burst makes it grow.
const HELD_CAPACITY: usize = 1024;

/// The dispatch's state.
#[derive(Debug)]
pub(super) struct Dispatch {
    pub(super) balance: Box<dyn Balance>,
    /// Slots that take connections now, in worker order.
    routes: Vec<usize>,
    /// Accepted connections no worker can take yet: kept, never dropped.
    held: Vec<OwnedFd>,
    /// Connections a lane gave back, to close or to route again.
    scratch: Vec<OwnedFd>,
    /// Connections a worker declined, to route elsewhere.
    declined: Vec<OwnedFd>,
    /// Connections refused with `503` because no worker could take them.
    pub(super) refused: u64,
    /// The multishot accept is armed.
    pub(super) accepting: bool,
    /// When the last fd-limit message was logged (rate limit).
    fd_limit_logged: Option<Instant>,
}

impl Dispatch {
    /// Connections held now, waiting for a ready worker.
    pub(super) fn held_now(&self) -> usize {
        self.held.len()
    }

    pub(super) fn new(balance: Box<dyn Balance>) -> Dispatch {
        Dispatch {
            balance,
            routes: Vec::with_capacity(super::MAX_SLOTS),
            held: Vec::with_capacity(HELD_CAPACITY),
            scratch: Vec::with_capacity(HELD_CAPACITY),
            declined: Vec::with_capacity(MAX_FDS),
            refused: 0,
            accepting: false,
            fd_limit_logged: None,
        }
    }
}

/// What the mode may know about the worker in `slot`.
fn route_facts(slots: &[Slot], stats: &StatsBlock, max_conns: u64, slot: usize, now: Instant) -> RouteFacts {
    RouteFacts {
        declined: slots[slot].declined_until.is_some_and(|until| until > now),
        live: stats.slot(slot).map_or(0, |c| c.live.load(Ordering::Relaxed)),
        max_conns,
        outstanding: slots[slot].lane.held_fds(),
    }
}

impl Master {
    /// Rebuilds the list of slots that take connections: ready, not retiring, in worker order.
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
    }

    fn master_accepts(&self) -> bool {
        let now = Instant::now();
        let max_conns = self.config.engine.max_conns as u64;
        let facts = |slot| route_facts(&self.slots, &self.stats, max_conns, slot, now);
        self.dispatch.balance.master_accepts(&self.dispatch.routes, &facts)
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
        // With no worker to take them, held connections are capped at the backlog;
        // past that, new ones wait in the kernel's queue instead of costing fds here.
        let holding_enough = self.dispatch.held.len() >= self.config.backlog as usize;
        if self.dispatch.accepting || self.stopping.is_some() || holding_enough || !self.upgrades.lets_accept() {
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
            self.route(connection);
            if self.dispatch.accepting && self.dispatch.held.len() >= self.config.backlog as usize {
                self.reactor.cancel(Op::Accept.token(0, 0))?;
            }
        }
        if out_of_fds(-result) {
            let held = self.dispatch.held.len() + self.slots.iter().map(|s| s.lane.held_fds()).sum::<usize>();
            self.log_fd_limit(format_args!(
                "the master is at its open-file limit ({}): accepting pauses; it holds {held} connections \
                 not yet taken by a worker",
                fd_limit_text()
            ));
        }
        // Out of fds or memory: the tick re-arms rather than spinning now.
        if !self.dispatch.accepting && !out_of_resources(-result) {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Gives an accepted connection to the worker the mode picks; holds it
    /// while no worker is ready; refuses it (`503`) when none can take it, or
    /// the master is stopping.
    fn route(&mut self, fd: OwnedFd) {
        let now = Instant::now();
        let max_conns = self.config.engine.max_conns as u64;
        let (slots, stats) = (&self.slots, &self.stats);
        let facts = |slot| route_facts(slots, stats, max_conns, slot, now);
        match self.dispatch.balance.pick(&self.dispatch.routes, &facts) {
            Some(slot) => {
                self.counts.handed_over += 1;
                self.slots[slot].lane.enqueue(fd);
            }
            None if self.dispatch.routes.is_empty() && self.stopping.is_none() => {
                self.counts.held += 1;
                self.dispatch.held.push(fd);
            }
            None => {
                self.dispatch.refused += 1;
                refuse(fd);
            }
        }
    }

    /// Routes connections held while no worker was ready.
    pub(super) fn route_held(&mut self) {
        if self.dispatch.routes.is_empty() {
            return;
        }
        let mut held = std::mem::take(&mut self.dispatch.held);
        for fd in held.drain(..) {
            self.route(fd);
        }
        self.dispatch.held = held;
    }

    /// Refuses every held connection (the master is stopping).
    pub(super) fn refuse_held(&mut self) {
        for fd in self.dispatch.held.drain(..) {
            self.dispatch.refused += 1;
            refuse(fd);
        }
    }

    /// Routes the connections in `scratch` again (a lane gave them back).
    fn reroute_scratch(&mut self) {
        let mut undelivered = std::mem::take(&mut self.dispatch.scratch);
        self.counts.rerouted += undelivered.len() as u64;
        for fd in undelivered.drain(..) {
            self.route(fd);
        }
        self.dispatch.scratch = undelivered;
    }

    /// Closes the master's copies in `scratch`: a worker adopted them.
    fn close_scratch(&mut self) -> io::Result<()> {
        let mut adopted = std::mem::take(&mut self.dispatch.scratch);
        let closed = adopted.drain(..).try_for_each(|fd| self.reactor.close(fd));
        self.dispatch.scratch = adopted;
        closed
    }

    /// Sends what every lane has queued (one message in flight per lane) and
    /// keeps a receive armed for each worker's acknowledgements.
    pub(super) fn pump_lanes(&mut self) -> io::Result<()> {
        for index in 0..self.slots.len() {
            let lane = &mut self.slots[index].lane;
            let epoch = lane.epoch;
            if let Some(message) = lane.next_send() {
                self.reactor.start(message, Op::LaneSend.token(index, epoch))?;
            }
            if let Some(ack) = self.slots[index].lane.next_recv() {
                self.reactor.start(ack, Op::LaneRecv.token(index, epoch))?;
            }
        }
        Ok(())
    }

    pub(super) fn on_lane_sent(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        match slot.lane.on_sent(result >= 0, &mut self.dispatch.scratch) {
            // Into a worker that has since died, maybe: settle its lane if so.
            Sent::Delivered => self.settle_gone_lane(index),
            Sent::Finished => {
                self.stop_receiving(index)?;
                self.close_scratch()
            }
            Sent::Failed => {
                self.refresh_routes();
                self.reroute_scratch();
                self.stop_receiving(index)?;
                self.settle_gone_lane(index)
            }
        }
    }

    /// Once a dead worker's lane has no op in flight: close what it acknowledged,
    /// hand everything else to the live workers.
    pub(super) fn settle_gone_lane(&mut self, index: usize) -> io::Result<()> {
        if !self.slots[index].lane.can_finish() {
            return Ok(());
        }
        let mut acknowledged = Vec::new();
        self.slots[index].lane.finish_gone(read_leftover_ack, &mut acknowledged, &mut self.dispatch.scratch);
        self.refresh_routes();
        self.reroute_scratch();
        self.dispatch.scratch.append(&mut acknowledged);
        self.close_scratch()
    }

    /// A worker acknowledged a batch: ours of the connections it adopted can
    /// close; those it did not take go to another worker, and it gets no new
    /// ones for a while.
    pub(super) fn on_lane_received(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        slot.lane.on_received(result, &mut self.dispatch.scratch, &mut self.dispatch.declined);
        if result > 0 {
            self.counts.acks += 1;
        }
        if !self.dispatch.declined.is_empty() {
            slot.declined_until = Some(Instant::now() + DECLINED_PAUSE);
            let mut declined = std::mem::take(&mut self.dispatch.declined);
            self.counts.rerouted += declined.len() as u64;
            for fd in declined.drain(..) {
                self.route(fd);
            }
            self.dispatch.declined = declined;
        }
        self.close_scratch()?;
        self.settle_gone_lane(index)
    }

    /// Cancels a lane's armed receive once its channel is closed, so the
    /// socket really closes and the worker sees the end of its channel.
    pub(super) fn stop_receiving(&mut self, index: usize) -> io::Result<()> {
        let lane = &self.slots[index].lane;
        if lane.is_receiving() {
            self.reactor.cancel(Op::LaneRecv.token(index, lane.epoch))?;
        }
        Ok(())
    }

    /// Logs about running out of file descriptors, at most every [`FD_LIMIT_LOG_EVERY`].
    pub(super) fn log_fd_limit(&mut self, message: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.dispatch.fd_limit_logged.is_some_and(|at| now.duration_since(at) < FD_LIMIT_LOG_EVERY) {
            return;
        }
        self.dispatch.fd_limit_logged = Some(now);
        crate::log!(warn: "{message}");
    }
}
