//! The master's accept: whether it accepts (the mode's word, room in the
//! workers), the multishot accept armed, what it accepted routed, and the
//! accept again after the open-file limit.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use ringmaster_engine::{out_of_fds, out_of_resources};

use crate::master::fd_limit_log::FdLimitLine;
use crate::master::{Master, Op};
use crate::rlimit::fd_limit_text;

impl Master {
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
    pub(in crate::master) fn may_take_connections(&self) -> bool {
        self.connections_it_may_take() > 0
    }

    /// How many connections the master may take off queues now: none while
    /// it may not ([`Master::may_take_connections`]), else what `--backlog`
    /// leaves beside those it holds. The same measure as `on_accept`'s: a
    /// connection routed straight into a worker's lane is not held, one no
    /// worker can take yet is; a take of this many keeps the master within
    /// `--backlog` even if none finds a worker.
    pub(in crate::master) fn connections_it_may_take(&self) -> usize {
        if self.stopping.is_some() || !self.fd_reserve.enough_for_a_start() {
            return 0;
        }
        (self.config.backlog as usize).saturating_sub(self.dispatch.held.len())
    }

    /// Arms the multishot accept when the mode wants the master to accept
    /// (and cancels it when it no longer does).
    pub(in crate::master) fn arm_accept(&mut self) -> io::Result<()> {
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

    pub(in crate::master) fn on_accept(
        &mut self,
        result: i32,
        more: bool,
        accepted: Option<OwnedFd>,
    ) -> io::Result<()> {
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

    /// At the end of a loop turn, after the fd reserve took back what it
    /// needs: an accept paused at the open-file limit starts again once
    /// connections the workers acknowledged were closed (their numbers are
    /// free by the time the accept runs: the ring runs the closes first, in
    /// order), not only at the next tick. Else the master accepted at most
    /// what its table holds per tick: 2 workers, `RLIMIT_NOFILE` 48, 74
    /// clients under churn served 1,715 connections in 8 s against 33,713
    /// at the usual limit. An accept that finds none free again pauses
    /// again, until more are closed: no spinning.
    pub(in crate::master) fn accept_again_after_closes(&mut self) -> io::Result<()> {
        if !self.dispatch.out_of_fds || self.dispatch.closed_since_out_of_fds == 0 {
            return Ok(());
        }
        self.dispatch.out_of_fds = false;
        self.arm_accept()
    }
}
