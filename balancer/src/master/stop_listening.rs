//! A stop's end of listening: once every worker has begun its drain (or
//! has none to begin), new clients are refused at once rather than queued
//! for as long as the drain lasts and reset when the master exits.
//! `reuseport`: a slot's listener is left to its worker, which takes its
//! queue as it drains, unless no process of that worker will take it: none
//! runs, or the one that does has stood still for [`STUCK_AT_STOP`]; then
//! the master answers that queue and shuts the listener.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringmaster_engine::stats::STATE_READY;

use super::answer_at_stop::{close_to_newcomers, Answering, Ending, Phase};
use super::Master;
use crate::config::Mode;
use crate::in_flight::Asked;
use crate::modes::HEARTBEAT_STALE;
use crate::reactor::sys;

/// How long a ready worker's loop may stand still (its heartbeat not
/// moving) during a stop before the master answers what waits on its
/// `reuseport` listener and shuts it. Counted from the stop's beginning at
/// the earliest: a loop in a long turn when the stop began (a slow handler
/// with several requests) ends it, and takes its queue as its drain
/// begins, however long it had stood still before. A stopped or wedged worker never
/// takes what waits there, and what the kernel sends it meanwhile waits
/// this long, not `--shutdown-timeout`. Longer than [`HEARTBEAT_STALE`],
/// after which the stop no longer waits for a drain to begin: a loop busy
/// with a slow handler stands still too, and serves what waits, sent
/// before the stop, a moment later (cut at 500 ms, a worker spending 200 ms
/// on each request had 3 of 10 clients that connected before the stop
/// answered 503). The price: a worker that stands still longer and then
/// runs on within `--shutdown-timeout` would have served what waited, and
/// it gets `503` instead (a 4 s stall: 2 of 10 clients that connected
/// before the stop, which it would have served 3 s later).
pub(super) const STUCK_AT_STOP: Duration = Duration::from_secs(2);

/// Where a process slot stands when a stop would stop listening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AtStop {
    /// No process runs there.
    Gone,
    /// Its drain has begun (or it was not ready yet): it takes what waits
    /// on its own listener, if it has one, and lets it go.
    Draining,
    /// Ready, and its loop has stood still past [`HEARTBEAT_STALE`]
    /// (stopped, wedged, or busy in a long turn): for this long since the
    /// stop began, or since its heartbeat last moved if that is later.
    Still(Duration),
    /// Ready and running: its drain is about to begin.
    Serving,
}

/// What becomes of a `reuseport` slot listener at a stop's tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Its worker takes what waits there: the master lets go of its copy.
    LeftToWorker,
    /// Nobody will: the master answers what waits, and shuts it (why).
    Shut(&'static str),
    /// Its worker has stood still, not long enough to give up on it yet.
    Kept,
}

/// Where a ready process stands at a stop: its loop's heartbeat has not
/// moved for `heartbeat_age`, and the stop began `since_stop` ago.
fn ready_at_stop(heartbeat_age: Duration, since_stop: Duration) -> AtStop {
    if heartbeat_age > HEARTBEAT_STALE {
        AtStop::Still(heartbeat_age.min(since_stop))
    } else {
        AtStop::Serving
    }
}

/// The fate of a listener whose worker's processes stand as `standing`
/// (none, one, or an old and a new one during a reload).
fn fate(standing: &[AtStop]) -> Fate {
    if standing.is_empty() {
        return Fate::Shut("no process runs it");
    }
    if !standing.iter().all(|at| matches!(at, AtStop::Still(_))) {
        return Fate::LeftToWorker;
    }
    if standing.iter().all(|at| matches!(at, AtStop::Still(d) if *d >= STUCK_AT_STOP)) {
        return Fate::Shut("its process stands still");
    }
    Fate::Kept
}

impl Master {
    /// Where the process in `slot` stands at `now`, during a stop.
    fn at_stop(&self, slot: usize, now: Instant) -> AtStop {
        let Some(process) = self.slots[slot].process.as_ref() else { return AtStop::Gone };
        if self.stats.slot(slot).is_some_and(|c| c.state.load(Ordering::Acquire) != STATE_READY) {
            return AtStop::Draining;
        }
        let began = self.stopping.as_ref().map_or(now, |s| s.began);
        ready_at_stop(now.saturating_duration_since(process.heartbeat_moved), now.saturating_duration_since(began))
    }

    /// No process of `worker` will take what waits on its listener: none
    /// runs, or each is ready and its loop has stood still past
    /// [`HEARTBEAT_STALE`].
    pub(super) fn worker_stands_still(&self, worker: usize, now: Instant) -> bool {
        (0..self.slots.len())
            .filter(|&slot| self.slots[slot].process.as_ref().is_some_and(|p| p.worker == worker))
            .all(|slot| matches!(self.at_stop(slot, now), AtStop::Still(_)))
    }

    /// The `reuseport` listeners a stop answers and shuts, by worker: the
    /// workers' own, and those set aside by a scale-down and not let go of
    /// yet (its retiree stood still, or it came in the tick before). Until
    /// 2026-12-07 a set-aside listener was passed by: what the kernel's
    /// hash queued there waited, newcomers too once the others were shut,
    /// until the master let go of it, and was reset when the master exited
    /// first (a retiree killed at `--shutdown-timeout` before it had stood
    /// still 2 s). The descriptors stay open until the worker is retired
    /// here ([`Balance::retire_worker`](crate::modes::Balance::retire_worker)).
    pub(super) fn listeners_at_stop(&self) -> Vec<(usize, RawFd)> {
        let balance = &self.dispatch.balance;
        let listeners = balance.own_listeners().into_iter().chain(balance.set_aside_listeners());
        listeners.map(|(worker, fd)| (worker, fd.as_raw_fd())).collect()
    }

    /// On the tick during a stop, and before the master exits (its workers
    /// may all be gone before a tick comes): once every worker has begun its
    /// drain (or has none to begin: gone, or stalled), the listeners stop
    /// listening.
    /// Not before: a worker that accepts takes what is queued until its
    /// drain begins, and serves it, so a request sent before the stop gets
    /// its answer rather than a `503`. `reuseport`: then on every tick, the
    /// listeners left for a worker that stands still.
    pub(super) fn stop_listening_when_drained(&mut self) {
        let Some(stopping) = self.stopping.as_ref() else { return };
        // One look at a time: the next comes once its listeners are shut.
        if stopping.answering.is_some() {
            return;
        }
        let now = Instant::now();
        if stopping.stopped_listening {
            if self.config.mode == Mode::Reuseport && !self.activated {
                self.settle_slot_listeners(now, false);
            }
            return;
        }
        if !stopping.stop_listening || (0..self.slots.len()).any(|slot| self.at_stop(slot, now) == AtStop::Serving) {
            return;
        }
        // The old master gave this one up after a stop (by an operator) began
        // here, and serves on, on these listeners.
        if let Some(old) = self.given_up_by_channel() {
            if let Err(e) = self.given_up_after_ready(old) {
                crate::log!(warn: "upgrade: leaving the listeners to the old master (pid {old}): {e}");
            }
            return;
        }
        if let Some(stopping) = self.stopping.as_mut() {
            (stopping.stop_listening, stopping.stopped_listening) = (false, true);
        }
        self.stop_listening(now);
    }

    /// A stop (not a hand-over to a new master): new clients are refused at
    /// once, rather than queued for as long as the drain lasts and reset
    /// when this master exits. What waits in the queue now is answered
    /// `503`, as held connections are, while the handshakes begun there end
    /// ([`Master::begin_answering`]); then the socket stops listening, for
    /// the workers' copies too (`shared`), and the kernel refuses the next
    /// ones ([`Master::end_of_answering`]). A socket systemd passed is left
    /// as it is: systemd keeps it, and what queues there, for the next start.
    fn stop_listening(&mut self, now: Instant) {
        if self.activated {
            return;
        }
        if self.config.mode == Mode::Reuseport {
            self.settle_slot_listeners(now, true);
            return;
        }
        close_to_newcomers(&[self.listener.as_raw_fd()]);
        self.begin_answering(Answering::new(vec![Ending::Listener], Vec::new(), Vec::new(), true));
    }

    /// `reuseport`: a slot's listener whose worker drains is left to it: the
    /// worker takes its queue as its drain begins and closes its own copy.
    /// The master closes the queue to newcomers then, and keeps its copy
    /// until its next look, when it answers what queued after the worker's
    /// last accept (`503`) and lets go: closed at once, the master's copy,
    /// the last, reset those (until 2026-12-06). A listener no process takes from (its worker has
    /// none running, or the one that runs has stood still for
    /// [`STUCK_AT_STOP`]) is answered and shut instead: else, once the
    /// others closed, the kernel would send every new connection to the
    /// only listener left in the group, where it waited until the stuck
    /// worker was killed at `--shutdown-timeout`, and was reset then. Shut
    /// (`SHUT_RD`), it leaves the group for every holder, its stuck worker's
    /// copy included, and with no listener left the kernel refuses the next
    /// connection at once. One whose worker has stood still for less is
    /// kept for the next tick. `first`: the stop's first look, always said.
    fn settle_slot_listeners(&mut self, now: Instant, first: bool) {
        let own = self.listeners_at_stop();
        let (mut shut, mut still, mut taken) = (Vec::new(), Vec::new(), Vec::new());
        let mut said = Vec::new();
        let mut closing_refused = None;
        let taken_before = self.stopping.as_ref().map(|s| s.taken_by_worker.clone()).unwrap_or_default();
        for (worker, listener) in own {
            // Its worker took its queue at an earlier look (and may have
            // exited since): what came after waits on the master's copy
            // alone, and would be reset as it closed.
            if taken_before.contains(&worker) {
                taken.push(Ending::Taken(worker));
                continue;
            }
            // A reload may run two processes of one worker, on one listener.
            let standing: Vec<AtStop> = (0..self.slots.len())
                .filter(|&slot| self.slots[slot].process.as_ref().is_some_and(|p| p.worker == worker))
                .map(|slot| self.at_stop(slot, now))
                .collect();
            match fate(&standing) {
                Fate::LeftToWorker => {
                    // Its worker takes what waits as its drain begins and lets
                    // go of it; newcomers are turned away from now on (their
                    // retry is refused), and what queues meanwhile is answered
                    // at the next look, not reset.
                    if let Err(e) = sys::close_queue_to_newcomers(listener) {
                        closing_refused = Some(e);
                    }
                    if let Some(stopping) = self.stopping.as_mut() {
                        stopping.taken_by_worker.push(worker);
                    }
                    if !first {
                        said.push(format!("worker {worker} runs again: it takes what waits on its listener"));
                    }
                }
                Fate::Shut(why) => {
                    close_to_newcomers(&[listener]);
                    shut.push(Ending::Shut(worker, why));
                }
                Fate::Kept => still.push(worker),
            }
        }
        if let Some(e) = closing_refused {
            crate::log!(warn: "stopping: cannot close the listen queues to newcomers ({e}): what comes before the next look is answered 503, one may be reset");
        }
        // The handshakes begun on the listeners shut at this look complete
        // into their queues first, answered as they come (those `taken` were
        // closed to newcomers at an earlier look): else each of their
        // clients is reset as it ends. The taken ones are shut first
        // (`end_of_answering`).
        taken.append(&mut shut);
        self.begin_answering(Answering::new(taken, said, still, first));
    }

    /// The answering of the queues has ended (no handshake under way on
    /// their port, or its deadline passed): the last packets in flight are
    /// let through, each queue is answered once more, and each listener is
    /// shut. `reuseport`: the taken ones first, and their workers let go
    /// of; then the others: with `net.ipv4.tcp_migrate_req` what waited on
    /// those moves to a listener left in the group, which answers it here.
    pub(super) fn end_of_answering(&mut self, answering: Answering) {
        if answering.listeners.is_empty() {
            return self.shut_answered(answering);
        }
        // The last ACK's request socket is gone from the count a moment
        // before its connection is queued, in the same packet's processing:
        // let that end (off the loop: `in_flight.rs`).
        match self.ask_packets_in_flight() {
            Asked::Passed => self.shut_answered(answering),
            Asked::Pending(wait) => self.keep_answering(answering.at(Phase::Ending(wait))),
        }
    }

    /// The packets in flight as the answering ended are let through: each
    /// queue is answered once more, and each listener shut.
    pub(super) fn shut_answered(&mut self, mut answering: Answering) {
        if !answering.listeners.is_empty() {
            self.answer_queues(&mut answering.listeners, Instant::now());
        }
        let mut said = std::mem::take(&mut answering.said);
        for &(ending, ref answered) in &answering.listeners {
            match (ending, answered) {
                (Ending::Listener, Err(e)) => {
                    crate::log!(warn: "stopping: cannot make the listener non-blocking ({e}); it listens until the exit")
                }
                (Ending::Listener, Ok(answered)) => match sys::stop_listening(self.listener.as_raw_fd()) {
                    Ok(()) => crate::log!(
                        "stopped listening: new connections are refused ({answered} waiting in the queue answered 503)"
                    ),
                    Err(e) => {
                        crate::log!(warn: "stopping: cannot stop listening ({e}); new connections wait until the exit")
                    }
                },
                (Ending::Taken(worker), _) => {
                    if let Some(listener) = self.answered_listener(ending) {
                        // If it cannot be made non-blocking, its queue is left
                        // to the shutdown (reset, or moved to another listener).
                        let more = self.answer_queue(listener, Instant::now()).unwrap_or(0);
                        let answered = answering.answered(ending) + more;
                        if let Err(e) = sys::stop_listening(listener) {
                            crate::log!(warn: "stopping: cannot shut worker {worker}'s listener ({e})");
                        }
                        if answered > 0 {
                            said.push(format!(
                                "{answered} that came to worker {worker}'s listener after it took its queue answered 503"
                            ));
                        }
                    }
                    self.dispatch.balance.retire_worker(worker);
                }
                (Ending::Shut(..), _) => {}
            }
        }
        for &(ending, _) in &answering.listeners {
            let Ending::Shut(worker, why) = ending else { continue };
            if let Some(listener) = self.answered_listener(ending) {
                let answered = answering.answered(ending) + self.answer_queue(listener, Instant::now()).unwrap_or(0);
                match sys::stop_listening(listener) {
                    Ok(()) => {
                        said.push(format!("worker {worker}'s listener shut ({why}; {answered} waiting answered 503)"))
                    }
                    Err(e) => crate::log!(warn: "stopping: cannot shut worker {worker}'s listener ({e})"),
                }
            }
            self.dispatch.balance.retire_worker(worker);
        }
        if self.config.mode != Mode::Reuseport {
            return;
        }
        if answering.first {
            for worker in &answering.still {
                said.push(format!(
                    "worker {worker} stands still: its listener is answered and shut once it has for {STUCK_AT_STOP:?}"
                ));
            }
            let said: String = said.iter().map(|s| format!("; {s}")).collect();
            crate::log!(
                "stopped listening: each worker takes what waits on its listener, then new connections are refused{said}"
            );
        } else if !said.is_empty() {
            crate::log!("stopping: {}", said.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_shut_only_when_no_process_will_take_from_it() {
        let long = AtStop::Still(STUCK_AT_STOP);
        let short = AtStop::Still(HEARTBEAT_STALE * 2);
        assert_eq!(fate(&[]), Fate::Shut("no process runs it"));
        assert_eq!(fate(&[long]), Fate::Shut("its process stands still"));
        assert_eq!(fate(&[AtStop::Draining]), Fate::LeftToWorker);
        // A loop busy with a slow handler may stand still past the heartbeat's
        // 500 ms, and still take its queue as its drain begins.
        assert_eq!(fate(&[short]), Fate::Kept);
        // During a reload, either process of the worker may take its queue.
        assert_eq!(fate(&[long, AtStop::Draining]), Fate::LeftToWorker);
        assert_eq!(fate(&[long, short]), Fate::Kept);
        assert_eq!(fate(&[AtStop::Serving]), Fate::LeftToWorker);
    }

    #[test]
    fn a_loop_still_before_the_stop_gets_the_whole_wait_after_it() {
        let just_begun = Duration::from_millis(100);
        // Busy in a long turn that began well before the stop: kept, it may
        // end the turn and take its queue as its drain begins.
        let busy = ready_at_stop(STUCK_AT_STOP, just_begun);
        assert_eq!(busy, AtStop::Still(just_begun));
        assert_eq!(fate(&[busy]), Fate::Kept);
        // Still for as long since the stop began: shut.
        let stuck = ready_at_stop(STUCK_AT_STOP * 3, STUCK_AT_STOP);
        assert_eq!(fate(&[stuck]), Fate::Shut("its process stands still"));
        // A loop that stopped during the stop counts from its last beat.
        assert_eq!(ready_at_stop(HEARTBEAT_STALE * 2, STUCK_AT_STOP * 2), AtStop::Still(HEARTBEAT_STALE * 2));
        assert_eq!(ready_at_stop(HEARTBEAT_STALE, STUCK_AT_STOP), AtStop::Serving);
    }
}
