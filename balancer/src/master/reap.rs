//! A worker process's end: reaping exited children, logging how each
//! exited, keeping its counts, and restarting a crashed worker after a
//! growing delay.

use std::io;
use std::time::Instant;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use ringmaster_engine::stats::{CountersSnapshot, STATE_STOPPED};

use super::Master;
use crate::backoff::HEALTHY_UPTIME;

impl Master {
    /// Reaps every exited child this master started: log a worker's exit,
    /// keep its counts, re-route what its lane held, plan a restart; a new
    /// master goes to the upgrade. Each by its pid: a library user's program
    /// may have children of its own (started before `serve`, or by a thread
    /// of its own), and `waitpid(-1)` took their exits, so the program's
    /// `Child::wait` failed with `ECHILD`.
    ///
    /// The pids are gathered in a buffer kept across calls (`reaped`), so
    /// a `SIGCHLD` allocates nothing for them: most are a library program's
    /// own children, or find every process still alive.
    pub(super) fn reap(&mut self) -> io::Result<()> {
        let mut started = std::mem::take(&mut self.reaped);
        started.clear();
        started
            .extend(self.slots.iter().filter_map(|s| s.process.as_ref().map(|p| p.pid)).chain(self.upgrades.child()));
        let reaped = self.reap_each(&started);
        self.reaped = started;
        reaped
    }

    /// Reaps those of `started` that have exited (see [`Master::reap`]).
    fn reap_each(&mut self, started: &[u32]) -> io::Result<()> {
        for &pid in started {
            let status = loop {
                match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    status => break status,
                }
            };
            let status = match status {
                // ECHILD: not a child after all (someone else reaped it).
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => continue,
                Ok(status) => status,
                Err(e) => return Err(e.into()),
            };
            let (how, code) = match status {
                WaitStatus::Exited(_, code) => (format!("exited with code {code}"), Some(code)),
                WaitStatus::Signaled(_, signal, _) => {
                    (format!("killed by signal {} ({})", signal as i32, signal.as_str()), None)
                }
                _ => continue,
            };
            let clean = code == Some(0);
            let Some(slot) = self.slots.iter().position(|s| s.process.as_ref().is_some_and(|p| p.pid == pid)) else {
                // Not a worker: the new master this one started.
                self.upgrade_child_exited(pid, &how, clean)?;
                continue;
            };
            self.process_exited(slot, &how, code)?;
        }
        Ok(())
    }

    /// The process in `slot` ended `how`, with exit code `code` (`None`: killed by a signal).
    fn process_exited(&mut self, slot: usize, how: &str, code: Option<i32>) -> io::Result<()> {
        let Some(process) = self.slots[slot].process.take() else { return Ok(()) };
        let clean = code == Some(0);
        let final_counts = self.stats.slot(slot).map(|c| c.snapshot()).unwrap_or_default();
        if let Some(counters) = self.stats.slot(slot) {
            counters.live.store(0, std::sync::atomic::Ordering::Relaxed);
            counters.set_state(STATE_STOPPED);
        }
        // Only a drained process's own clean exit is the normal course: a
        // signal (the master's, after a drain overran, or anyone's) or an
        // error code is worth a warning even while retiring or stopping.
        let expected = (process.retiring || self.stopping.is_some()) && clean;
        // Decided before a restart is planned: one the master would never
        // make is not logged as coming.
        let no_worker_can_start = self.no_worker_can_start(code);
        let (id, pid) = (process.worker, process.pid);
        let why = process.killed_for.filter(|_| !clean).map_or_else(String::new, |why| format!(" {why}"));
        if expected {
            crate::log!(info { worker: id, worker_pid: pid }: "worker {id} (pid {pid}) {how}");
        } else {
            crate::log!(warn { worker: id, worker_pid: pid }: "worker {id} (pid {pid}) {how}{why}");
        }
        self.slots[slot].lane.mark_gone();
        self.stop_receiving(slot)?;
        let reload_cancelled = !process.ready && self.reload_start_failed(id, slot, pid, how);
        match self.worker_index(id) {
            Some(index) => {
                let worker = &mut self.workers[index];
                add_counts(&mut worker.totals, &final_counts);
                // A cancelled reload gave the worker its old process back.
                if worker.slot == Some(slot) && !reload_cancelled {
                    worker.slot = None;
                    if !worker.retired && self.stopping.is_none() && !no_worker_can_start {
                        self.plan_restart(index, process.started);
                    }
                }
                // Listed (and counted) until its last process is gone.
                let others = self.slots.iter().any(|s| s.process.as_ref().is_some_and(|p| p.worker == id));
                if self.workers[index].retired && self.workers[index].slot.is_none() && !others {
                    self.remove_worker(index);
                }
            }
            // Its worker was removed while this process ran on.
            None => add_counts(&mut self.retired_counts, &final_counts),
        }
        self.refresh_routes();
        self.settle_gone_lane(slot)?;
        self.old_process_gone(slot);
        if let Some(code) = code.filter(|_| no_worker_can_start) {
            self.stop_as_no_worker_can_start(id, code)?;
        }
        self.step_reload()
    }

    /// Removes a worker scaled away, its counts kept in the master's
    /// `retired_counts`: the totals of the stats line and the metrics never
    /// go backwards (a crashed or reloaded process's stay in its worker's).
    pub(super) fn remove_worker(&mut self, index: usize) {
        let worker = self.workers.remove(index);
        add_counts(&mut self.retired_counts, &worker.totals);
    }

    /// Plans the restart of the worker at `index` after its back-off; the
    /// timer fires for it (`timer.rs`).
    fn plan_restart(&mut self, index: usize, started: Instant) {
        self.timer_outdated = true;
        let worker = &mut self.workers[index];
        let uptime = started.elapsed();
        if uptime < HEALTHY_UPTIME {
            worker.unstable_restarts += 1;
        }
        let delay = worker.backoff.after_exit(uptime);
        worker.restart_at = Some(Instant::now() + delay);
        crate::log!("worker {} restarting in {} ms", worker.id, delay.as_millis());
    }

    /// [`Master::add_worker`] for a running master: a worker that cannot
    /// start now (out of fds, processes or memory) is logged and started
    /// later, with the restart back-off, instead of taking the master down.
    /// Its process must be ready within `--shutdown-timeout`, or it is killed
    /// and restarted the same way.
    pub(super) fn add_worker_or_retry(&mut self) {
        let started = self.add_worker();
        // `add_worker` keeps the worker it added, started or not.
        let Some(id) = self.workers.last().map(|w| w.id) else { return };
        match started {
            Ok(()) => self.set_ready_deadline(id, "scale"),
            Err(e) => {
                crate::log!(error { worker: id }: "cannot start worker {id}: {e}");
                self.plan_restart(self.workers.len() - 1, Instant::now());
            }
        }
    }

    /// Starts the workers whose restart delay is over; each new process must
    /// be ready within `--shutdown-timeout`.
    pub(super) fn restart_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            if self.workers[index].restart_at.is_none_or(|at| at > now) {
                continue;
            }
            self.workers[index].restarts += 1;
            let id = self.workers[index].id;
            match self.spawn(id) {
                Ok(()) => self.set_ready_deadline(id, "restart"),
                Err(e) => {
                    crate::log!(error { worker: id }: "cannot restart worker {id}: {e}");
                    self.plan_restart(index, Instant::now());
                }
            }
        }
    }
}

/// Adds the counters of `from` that only grow (not `live`, `state`, ...) to `into`.
fn add_counts(into: &mut CountersSnapshot, from: &CountersSnapshot) {
    into.accepted += from.accepted;
    into.requests += from.requests;
    into.rejected += from.rejected;
    into.fd_limit_hits += from.fd_limit_hits;
    into.idle_reclaimed += from.idle_reclaimed;
    into.handler_panics += from.handler_panics;
}
