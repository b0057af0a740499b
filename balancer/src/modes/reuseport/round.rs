//! `--steer load`'s round, every [`STEER_EVERY`](super::STEER_EVERY): each
//! slot looked at and its load written to the program's map (its count
//! evened out with its accept queue), then what waits where no worker can
//! take it taken for the master to hand on, within the room of those that
//! take.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::load::{
    beyond_room, is_stalled, passed_over_load, room_for_rescue, steer_load, waiting_since, Drift, PassedOver, Sample,
};
use super::take::take_queued;
use super::Reuseport;
use crate::bpf::program::STALLED;
use crate::bpf::sys::accept_queue_len;
use crate::modes::{RescuePaused, SlotFacts};

impl Reuseport {
    /// One round over `slots` ([`Balance::steer`](crate::modes::Balance::steer)):
    /// what it takes goes into `taken`, no more than `up_to`.
    pub(super) fn steer_round(
        &mut self,
        slots: &[SlotFacts],
        taken: &mut Vec<OwnedFd>,
        up_to: usize,
    ) -> Option<RescuePaused> {
        self.enter_maps();
        let steer = self.steer.as_mut()?;
        let now = Instant::now();
        steer.stuck.clear();
        let mut room = 0u64;
        for facts in slots {
            let Some(listener) = self.listeners.get(&facts.worker) else { continue };
            let queue = accept_queue_len(listener.as_fd()).unwrap_or(0);
            let last = steer.last.get(&facts.worker).copied();
            // A listener not in this master's maps yet was handed down by an
            // old master whose maps still hold it (`EBUSY`): the old master's
            // worker of the slot accepts there too, unseen here, so a queue
            // that waits says nothing of this master's worker, and the
            // counts the program keeps start as it enters (no drift is
            // looked for before). Its wait counts from the look that finds
            // it in the maps.
            let steered = steer.steering.keys().contains(&facts.worker);
            let since = if steered { waiting_since(last.as_ref(), queue, facts.accepted, now) } else { None };
            let mut load = steer_load(facts, queue, since.map_or(Duration::ZERO, |since| now - since));
            let turned_at = steer.steering.turned_at(facts.worker).unwrap_or(0);
            let passed_over = last.and_then(|last| last.passed_over).filter(|p| p.turned_at == turned_at);
            if let Some(passed_over) = passed_over {
                load = passed_over_load(load, now - passed_over.since);
            }
            let mut drift = last.filter(|_| steered).map_or_else(Drift::default, |last| last.drift);
            if let Some((sent, accepted)) = steer.steering.flow_of(facts.worker).filter(|_| steered) {
                let excess = sent.wrapping_sub(accepted) as i64 - i64::from(queue);
                if let Some(correction) = drift.look(excess) {
                    steer.steering.count_accepted(facts.worker, correction);
                }
            }
            let rescued = last.map_or(0, |last| last.rescued);
            let sample = Sample { accepted: facts.accepted, waiting_since: since, drift, passed_over, rescued };
            steer.last.insert(facts.worker, sample);
            let stalled = is_stalled(load);
            // A worker with no process to accept (dead, or restarting: the
            // back-off is 100 ms to 15 s) leaves its queue to the others too.
            let stuck = if stalled || facts.unserved {
                queue
            } else {
                facts.route.map_or(0, |route| beyond_room(&route, queue))
            };
            if stuck > 0 {
                steer.stuck.push((facts.worker, stuck, stalled));
            }
            // Only a worker the program steers to may take what is handed on
            // (`route` picks among those): with none, what waits stays where
            // a worker may still accept it, rather than in this master's
            // hands until the old master lets go of its maps. And no more
            // than those have room for: the rest waits where it is.
            if let Some(route) = facts.route.filter(|route| steered && load < STALLED && route.takes()) {
                room += room_for_rescue(&route, queue);
            }
            // A failed write leaves the last load in place; the next refresh tries again.
            let _ = steer.steering.set_load(facts.worker, load);
            steer.steering.start_window(facts.worker);
        }
        // What waits on a worker that cannot take it goes to one that can, if
        // any, and if the master may take connections now: no more than it
        // may, nor than the workers that take have room for (before, every
        // stuck queue was taken whole as soon as one worker had any room,
        // and what it had no room for got `503`), the rest in later rounds.
        if room == 0 {
            return None;
        }
        let mut budget = u32::try_from(room.min(up_to as u64)).unwrap_or(u32::MAX);
        let first = steer.rescue_turn % steer.stuck.len().max(1);
        steer.rescue_turn = steer.rescue_turn.wrapping_add(1);
        let (before_first, from_first) = steer.stuck.split_at(first);
        for &(worker, queue, stalled) in from_first.iter().chain(before_first) {
            if budget == 0 {
                break;
            }
            let (Some(listener), Some(sample)) = (self.listeners.get(&worker), steer.last.get_mut(&worker)) else {
                continue;
            };
            let take = take_queued(listener.as_fd(), queue.min(budget), taken);
            budget -= take.taken;
            if take.taken > 0 {
                steer.steering.count_accepted(worker, i64::from(take.taken));
                sample.rescued += u64::from(take.taken);
                if stalled {
                    let turned_at = steer.steering.turned_at(worker).unwrap_or(0);
                    let since = sample.passed_over.map_or(now, |p| p.since);
                    sample.passed_over = Some(PassedOver { turned_at, since });
                }
            }
            // Out of descriptors or memory: every other queue's accept would
            // fail as this one did; the next round tries again.
            if let Some(error) = take.starved {
                return Some(RescuePaused { worker, left: queue - take.taken, error });
            }
        }
        None
    }
}
