//! Steering the kernel's choice: for a mode whose workers accept on
//! listeners of their own and that steers which one the kernel picks
//! (`reuseport --steer load`), the master hands it every worker slot's facts
//! each [`Balance::steer_every`](crate::modes::Balance::steer_every), and
//! hands on what the mode took from the queue of a stalled or full worker
//! (nothing while its fd reserve lacks what a start needs: `fd_reserve.rs`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Master;
use crate::modes::SlotFacts;

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
            });
        }
        let mut taken = std::mem::take(&mut self.steer_taken);
        // A start's descriptors come first, as for the master's own accepts
        // (`arm_accept`): at the open-file limit a take from a queue would
        // get each number a close gives back before the reserve could, and
        // hold it while the worker it waits for cannot be restarted.
        let may_take = self.fd_reserve.enough_for_a_start();
        self.dispatch.balance.steer(&facts, may_take.then_some(&mut taken));
        self.steer_facts = facts;
        for connection in taken.drain(..) {
            self.counts.rescued += 1;
            self.route(connection);
        }
        self.steer_taken = taken;
    }
}
