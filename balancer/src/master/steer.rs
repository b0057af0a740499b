//! Steering the kernel's choice: for a mode whose workers accept on
//! listeners of their own and that steers which one the kernel picks
//! (`reuseport --steer load`), the master hands it every worker slot's facts
//! each [`Balance::steer_every`](crate::modes::Balance::steer_every), and
//! hands on what the mode took from the queue of a stalled or full worker
//! (nothing while the master may not take connections, as for its own
//! accepts: stopping, holding `--backlog`, or its fd reserve short of what a
//! start needs; no more in a round than `--backlog` leaves it; and, at its
//! open-file limit, nothing more that round, said in the rate-limited
//! fd-limit line).

use std::sync::atomic::Ordering;
use std::time::Instant;

use ringmaster_engine::out_of_fds;

use super::fd_limit_log::FdLimitLine;
use super::Master;
use crate::modes::SlotFacts;
use crate::rlimit::fd_limit_text;

impl Master {
    /// Hands the mode the facts of every worker that is not retired, and
    /// routes what it took from the queue of a stalled or full worker.
    pub(super) fn steer(&mut self) {
        if self.dispatch.balance.steer_every().is_none() {
            return;
        }
        let mut facts = std::mem::take(&mut self.steer_facts);
        facts.clear();
        let judge = self.judge(Instant::now());
        for worker in self.workers.iter().filter(|w| !w.retired) {
            let takes = |slot: &usize| self.slots[*slot].process.as_ref().is_some_and(|p| p.ready && !p.retiring);
            facts.push(SlotFacts {
                worker: worker.id,
                route: worker.slot.filter(takes).map(|slot| judge.facts(slot)),
                accepted: worker
                    .slot
                    .and_then(|slot| self.stats.slot(slot))
                    .map_or(0, |c| c.accepted.load(Ordering::Relaxed)),
                unserved: !self
                    .slots
                    .iter()
                    .filter_map(|s| s.process.as_ref())
                    .any(|p| p.worker == worker.id && p.ready && !p.retiring),
            });
        }
        let mut taken = std::mem::take(&mut self.steer_taken);
        // By the rules of the master's own accepts (`arm_accept`): within
        // `--backlog`, whatever the stuck queues hold.
        let up_to = self.connections_it_may_take();
        let paused = self.dispatch.balance.steer(&facts, &mut taken, up_to);
        self.steer_facts = facts;
        for connection in taken.drain(..) {
            self.counts.rescued += 1;
            self.route(connection);
        }
        self.steer_taken = taken;
        if let Some(paused) = paused.filter(|p| p.error.raw_os_error().is_some_and(out_of_fds)) {
            self.log_fd_limit(
                FdLimitLine::Rescue,
                format_args!(
                    "the master is at its open-file limit ({}): rescuing from worker {}'s queue pauses; {} \
                 connections wait there for a worker that can take them",
                    fd_limit_text(),
                    paused.worker,
                    paused.left
                ),
            );
        }
    }
}
