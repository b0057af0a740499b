//! A stop's last hand-off, where the master accepts (`rr`, `least`): the
//! connections that reached the server before the stop — waiting in the
//! listen queue, or held for a worker that lagged — go to workers with room
//! before each worker's `Drain` goes down its lane. So do those an old
//! master holds when it drains after handing over to a new one. A lane
//! sends what it has queued before its `Drain`, and a worker adopts and
//! serves (with `Connection: close`) what comes before it, so these clients
//! are answered as the workers of `shared` answer what they accept before
//! their drain begins; before, they got `503`, or a reset when the workers
//! were done before the master's tick stopped listening. What no worker has
//! room for is refused as before; a worker that dies without acknowledging
//! a batch leaves it to the master, which refuses it then (its lane is
//! settled as any dead worker's). `reuseport`: what waits on the listener
//! of a worker that stands still (or has no process) goes the same way.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::Master;
use crate::log::counted;
use crate::modes::Accepting;
use crate::reactor::sys;

impl Master {
    /// Before the lanes are told to drain (a stop, or the old master's drain
    /// once it handed over): takes what waits in the listen queue now and
    /// hands it, with what the master holds, to workers with room. The
    /// queue only while the listener is this master's alone: during a
    /// hand-over the new master takes it.
    pub(super) fn hand_off_before_drain(&mut self) {
        match self.dispatch.balance.accepting() {
            Accepting::Master => {}
            Accepting::OwnListeners if self.upgrades.lets_accept() => return self.hand_off_still_queues(),
            _ => return,
        }
        let taken = if self.upgrades.lets_accept() { self.take_listen_queue() } else { 0 };
        let placed = self.place_held();
        if taken > 0 || placed > 0 {
            let left = self.dispatch.held_now();
            crate::log!(
                "stopping: {} taken from the listen queue; {} handed to workers before their drain, {left} with \
                 none to go to (503)",
                counted(taken, "connection"),
                counted(placed, "held connection")
            );
        }
    }

    /// `reuseport`: what waits on the listener of a worker that will not take
    /// it (no process of it runs, or each stands still past
    /// [`HEARTBEAT_STALE`](crate::modes::HEARTBEAT_STALE)) goes to workers
    /// whose loops turn and have room, before their `Drain`, as `--steer
    /// load` rescues it while serving. Before, it waited for the stop's
    /// [`STUCK_AT_STOP`] and got `503`, the other workers gone by then (seen:
    /// 3 clients queued on a stopped worker's listener with `--steer hash`,
    /// in 20 stops of 20). What none of them has room for stays there, for
    /// that `503`.
    ///
    /// [`STUCK_AT_STOP`]: super::stop_listening::STUCK_AT_STOP
    fn hand_off_still_queues(&mut self) {
        let now = Instant::now();
        for (worker, listener) in self.listeners_at_stop() {
            if !self.worker_stands_still(worker, now) {
                continue;
            }
            let queued = sys::accept_queue_len(listener).unwrap_or(0);
            if queued == 0 || sys::set_nonblocking(listener).is_err() {
                continue;
            }
            let mut taken = 0;
            for _ in 0..queued {
                let Some(slot) = self.pick_taker(now) else { break };
                match sys::accept(listener) {
                    Ok(connection) => {
                        self.counts.rescued += 1;
                        self.counts.handed_over += 1;
                        self.slots[slot].lane.enqueue(connection);
                        taken += 1;
                    }
                    Err(e) if sys::accept_goes_on(&e) => {}
                    Err(_) => break,
                }
            }
            if taken > 0 {
                crate::log!(
                    "stopping: {} taken from the listener of worker {worker}, which stands still, and handed to \
                     workers before their drain",
                    counted(taken, "connection")
                );
            }
        }
    }

    /// A worker that takes connections now (its loop turns, it has room,
    /// it neither lags nor drains), the one with the fewest outstanding.
    fn pick_taker(&self, now: Instant) -> Option<usize> {
        let judge = self.judge(now);
        let facts = |slot: &usize| judge.facts(*slot);
        self.dispatch
            .routes
            .iter()
            .filter(|slot| facts(slot).takes())
            .min_by_key(|slot| facts(slot).outstanding())
            .copied()
    }

    /// Accepts the connections queued on the listener now (as many as it
    /// counts: one that comes later came after the stop) and routes each as
    /// an accept would; how many. Stops early at `EAGAIN` (one reset in the
    /// queue) or when the master is out of descriptors: the rest wait for
    /// `stop_listening`'s `503`.
    fn take_listen_queue(&mut self) -> usize {
        let listener = self.listener.as_raw_fd();
        // Nothing must block: only the master accepts on it in these modes.
        if let Err(e) = sys::set_nonblocking(listener) {
            crate::log!(warn: "stopping: cannot make the listener non-blocking ({e}): its queue waits for the workers' drain");
            return 0;
        }
        let queued = sys::accept_queue_len(listener).unwrap_or(self.config.backlog as usize);
        let mut taken = 0;
        for _ in 0..queued {
            match sys::accept(listener) {
                Ok(connection) => {
                    self.counts.accepted += 1;
                    taken += 1;
                    self.route(connection);
                }
                Err(e) if sys::accept_goes_on(&e) => {}
                Err(_) => break,
            }
        }
        taken
    }

    /// Hands each held connection to a worker with room: the mode's pick if
    /// one takes now, else, among those with room by their own count, one
    /// that keeps up, then one whose loop turns (busy: its acks come late),
    /// then one that stands still, each by fewest outstanding
    /// ([`Master::pick_with_room`]; a lagging one sends its ack, and takes
    /// its queue, when it catches up; one that never does is killed at
    /// `--shutdown-timeout` and what it held refused).
    /// Draining and lame-duck workers count: they adopt what comes before
    /// their `Drain`. What finds none stays held (refused by the stop). How
    /// many were handed.
    fn place_held(&mut self) -> usize {
        let mut held = self.dispatch.take_held();
        let mut placed = 0;
        for fd in held.drain(..) {
            match self.pick_with_room() {
                Some(slot) => {
                    self.counts.handed_over += 1;
                    self.slots[slot].lane.enqueue(fd);
                    placed += 1;
                }
                None => self.dispatch.hold(fd),
            }
        }
        self.dispatch.give_back_held(held);
        placed
    }
}
