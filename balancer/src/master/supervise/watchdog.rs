//! The watchdogs over worker processes: a loop that stopped turning (a
//! master that stood still forgiven), a worker that drains on its own, a
//! worker at its open-file limit.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringmaster_engine::stats::STATE_DRAINING;

use crate::master::fd_limit_log::FdLimitLine;
use crate::master::Master;
use crate::rlimit::fd_limit_text_of;

/// Turns of the master further apart than this (its timer fires at least
/// every tick): it stood still between them (`SIGSTOP`, a machine paused or
/// starved). No more than this of such a gap counts as time a heartbeat
/// stood still.
const STOOD_STILL: Duration = Duration::from_millis(3 * crate::master::TICK.as_millis() as u64);

/// How much of the time since the master's last turn (`since`) it did not
/// watch: all beyond [`STOOD_STILL`].
fn unwatched(since: Duration) -> Duration {
    since.saturating_sub(STOOD_STILL)
}

impl Master {
    /// At the start of each of the master's turns: of the time since its
    /// last turn, what it did not watch (all past [`STOOD_STILL`]: it stood
    /// still) is not counted as time any heartbeat stood still. Each turn,
    /// not the tick's look alone: the routing facts' heartbeat age
    /// (`judge.rs`) and a stop's judgement of a worker that stands still
    /// (`stop_listening.rs`, on the tick before the look) read the same
    /// `heartbeat_moved`. Until 2026-12-07 they read it before the look
    /// after a stand-still, and a stop's first tick after one shut the
    /// listener of a `reuseport` worker that stood still with the master,
    /// its queued clients answered `503`.
    pub(in crate::master) fn forgive_stand_still(&mut self) {
        let now = Instant::now();
        let unwatched = unwatched(now.saturating_duration_since(self.heartbeats_watched));
        self.heartbeats_watched = now;
        if unwatched.is_zero() {
            return;
        }
        for process in self.slots.iter_mut().filter_map(|slot| slot.process.as_mut()) {
            process.heartbeat_moved = (process.heartbeat_moved + unwatched).min(now);
        }
    }

    /// Notes whose loop's heartbeat moved (the routing facts' heartbeat
    /// age), and kills ready workers whose loop has not turned for `--watchdog`
    /// of the time the master watched. A master that stood still past
    /// [`STOOD_STILL`] did not watch the rest
    /// ([`Master::forgive_stand_still`]): a worker that stood still with it
    /// (the whole process group stopped and continued, a cgroup frozen and
    /// thawed, a paused or starved machine) is not blamed for it, and gets the
    /// rest of its `--watchdog` to turn once both run again. Until 2026-12-07
    /// the master's first look after such a stand-still, which may come before
    /// a worker's first turn, killed every worker as having made no progress.
    pub(in crate::master) fn watch_heartbeats(&mut self) {
        let now = Instant::now();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            let Some(counters) = self.stats.slot(index) else { continue };
            let beat = counters.heartbeat.load(std::sync::atomic::Ordering::Relaxed);
            if beat != process.heartbeat || !process.ready {
                process.heartbeat = beat;
                process.heartbeat_moved = now;
                continue;
            }
            let Some(limit) = self.config.watchdog else { continue };
            if now.duration_since(process.heartbeat_moved) >= limit && !process.killed_by_watchdog {
                crate::log!(warn:
                    "worker {} (pid {}) made no progress for {:.1} s: killing it",
                    process.worker,
                    process.pid,
                    limit.as_secs_f64()
                );
                process.killed_by_watchdog = true;
                let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
            }
        }
    }

    /// Each tick: a worker that drains though the master never told it to
    /// (a stop signal sent to its own pid: `kill PID`, `SIGINT`, `SIGQUIT`)
    /// gets its lane's `Drain`, and its channel closes once its batches are
    /// settled: it takes nothing more (what is queued for it goes to the
    /// others) and ends as soon as its own connections are done, then is
    /// restarted as after any exit. A worker waits for its channel's end
    /// before it exits, so that a stop's last hand-off still reaches it;
    /// until 2026-12-07 nobody closed it, and such a worker, routed nothing
    /// as it drained, lived on `--shutdown-timeout` (30 s) with no connection:
    /// a lone worker's clients waited all that time in the master. Seen at
    /// two ticks in a row, so that a signal sent to the whole group (the
    /// master's own stop follows at once) is left to the stop.
    pub(in crate::master) fn close_lanes_of_self_drained(&mut self) {
        if self.stop_begun() {
            return;
        }
        let mut closed = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            let draining = process.ready
                && slot.lane.is_routable()
                && self
                    .stats
                    .slot(index)
                    .is_some_and(|c| c.state.load(std::sync::atomic::Ordering::Acquire) == STATE_DRAINING);
            let seen_before = std::mem::replace(&mut process.seen_draining, draining);
            if !(draining && seen_before) {
                continue;
            }
            let (id, pid) = (process.worker, process.pid);
            crate::log!(warn { worker: id, worker_pid: pid }:
                "worker {id} (pid {pid}) is draining though the master did not ask it to (a stop signal sent to \
                 it): it takes no more connections, and ends once its own are done; it is restarted then");
            closed.push(index);
        }
        if closed.is_empty() {
            return;
        }
        for &index in &closed {
            self.request_drain_of(index);
        }
        self.refresh_routes();
        for index in closed {
            self.reroute_queue_of(index);
        }
    }

    /// Logs (rate-limited) when a worker reports it ran out of file descriptors.
    pub(in crate::master) fn watch_fd_limits(&mut self) {
        let mut hit = None;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            let Some(counters) = self.stats.slot(index) else { continue };
            let hits = counters.snapshot().fd_limit_hits;
            if hits != process.fd_limit_hits {
                process.fd_limit_hits = hits;
                hit = Some((process.worker, process.pid));
            }
        }
        if let Some((id, pid)) = hit {
            self.log_fd_limit(
                FdLimitLine::Worker,
                format_args!(
                    "worker {id} (pid {pid}) is at its open-file limit ({}): connections it cannot take go to other \
                 workers, or get 503 when none can",
                    fd_limit_text_of(pid)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_between_looks_counts_up_to_the_stand_still_bound() {
        assert_eq!(unwatched(crate::master::TICK), Duration::ZERO);
        assert_eq!(unwatched(STOOD_STILL), Duration::ZERO);
        assert_eq!(unwatched(Duration::from_secs(3)), Duration::from_secs(3) - STOOD_STILL);
    }
}
