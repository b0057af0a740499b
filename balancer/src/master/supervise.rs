//! Worker processes: the process table, starting a process in a free slot,
//! noticing it is ready (or killing one started by a restart or a scale-up
//! that is not ready in time), and the watchdogs (a loop that stopped
//! turning, a worker at its open-file limit); how a process ends is `reap.rs`.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringmaster_engine::channel::channel_pair;
use ringmaster_engine::stats::{CountersSnapshot, STATE_DRAINING, STATE_READY, STATE_STARTING};

use super::fd_limit_log::FdLimitLine;
use super::stats::Rate;
use super::{Master, MAX_SLOTS};
use crate::backoff::Backoff;
use crate::cpus::cpu_for_worker;
use crate::handoff::Lane;
use crate::modes::WorkerListener;
use crate::rlimit::fd_limit_text_of;
use crate::spawn::{spawn_worker, Inherited, WorkerLaunch};

/// The `listening on` line waits for every first worker to be ready, but no
/// longer than this (a worker that cannot start must not hide the address).
pub(super) const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);

/// The least time a new process gets to be ready, however short
/// `--shutdown-timeout` is: a start on a busy machine can take a while, and
/// one killed for it would only start again.
const MIN_READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Turns of the master further apart than this (its timer fires at least
/// every tick): it stood still between them (`SIGSTOP`, a machine paused or
/// starved). No more than this of such a gap counts as time a heartbeat
/// stood still.
const STOOD_STILL: Duration = Duration::from_millis(3 * super::TICK.as_millis() as u64);

/// How much of the time since the master's last turn (`since`) it did not
/// watch: all beyond [`STOOD_STILL`].
fn unwatched(since: Duration) -> Duration {
    since.saturating_sub(STOOD_STILL)
}

/// A running worker process.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) pid: u32,
    pub(super) worker: usize,
    pub(super) started: Instant,
    pub(super) ready: bool,
    pub(super) retiring: bool,
    /// Retired by a reload or a scale-down (which one, for the log): killed
    /// if still running at this instant, as a stopped or wedged process
    /// never exits by itself. Cleared once it is killed.
    pub(super) drain_deadline: Option<(Instant, &'static str)>,
    /// Why the master killed it, for its exit line (`after overrunning its drain`).
    pub(super) killed_for: Option<&'static str>,
    /// Started by a restart or a scale-up (which one, for the log): killed
    /// if still not ready at this instant. A reload's new process has its
    /// own deadline, in the reload.
    pub(super) ready_by: Option<(Instant, &'static str)>,
    heartbeat: u64,
    /// When its heartbeat last moved (sampled every tick).
    pub(super) heartbeat_moved: Instant,
    killed_by_watchdog: bool,
    /// The worker's `fd_limit_hits` when last looked at.
    fd_limit_hits: u64,
    /// It was draining by itself at the last tick ([`Master::close_lanes_of_self_drained`]).
    seen_draining: bool,
}

impl Process {
    /// Kills it (`SIGKILL`), noting `reason` for its exit line
    /// (`as it was not ready in time`). It is our child, not yet reaped:
    /// the pid is still its own.
    pub(super) fn kill(&mut self, reason: &'static str) {
        self.killed_for = Some(reason);
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }
}

/// A process slot: its lane and the process using it.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) lane: Lane,
    pub(super) process: Option<Process>,
    /// The worker declined connections (full, or at its fd limit): skipped until then.
    pub(super) declined_until: Option<Instant>,
    /// Since when the worker has not kept up (seen at a tick), and whether
    /// the master has said so.
    pub(super) lagging: Option<(Instant, bool)>,
}

/// A worker id, kept (with its CPU) across restarts.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) id: usize,
    pub(super) cpu: Option<usize>,
    /// Slot of the current process (a retiring older one is not counted here).
    pub(super) slot: Option<usize>,
    pub(super) last_pid: Option<u32>,
    pub(super) restarts: u32,
    pub(super) backoff: Backoff,
    pub(super) restart_at: Option<Instant>,
    /// Counts of this worker's processes that have exited.
    pub(super) totals: CountersSnapshot,
    /// Scaled away: it exits after draining and is not restarted.
    pub(super) retired: bool,
    /// Restarts after a run shorter than [`HEALTHY_UPTIME`](crate::backoff::HEALTHY_UPTIME) (PM2's `unstable_restarts`).
    pub(super) unstable_restarts: u32,
    /// Its request rate, sampled once a second.
    pub(super) rate: Rate,
    /// Times the master's routing passed it over, over its processes (see
    /// [`Routing::passed_over`](crate::stats_line::Routing::passed_over)).
    pub(super) passed_over: u64,
}

impl Master {
    pub(super) fn add_worker(&mut self) -> io::Result<()> {
        let id = self.workers.iter().map(|w| w.id).max().unwrap_or(0) + 1;
        let cpu = if self.config.pin { Some(cpu_for_worker(&self.cpus, id)) } else { None };
        self.workers.push(Worker {
            id,
            cpu,
            slot: None,
            last_pid: None,
            restarts: 0,
            backoff: Backoff::new(),
            restart_at: None,
            totals: CountersSnapshot::default(),
            retired: false,
            unstable_restarts: 0,
            rate: Rate::new(Instant::now()),
            passed_over: 0,
        });
        self.spawn(id)
    }

    pub(super) fn worker_index(&self, id: usize) -> Option<usize> {
        self.workers.iter().position(|w| w.id == id)
    }

    pub(super) fn active_workers(&self) -> usize {
        self.workers.iter().filter(|w| !w.retired).count()
    }

    /// A slot no process uses and whose lane is idle, making one if needed.
    fn free_slot(&mut self) -> io::Result<usize> {
        if let Some(index) = self.slots.iter().position(|s| s.process.is_none() && s.lane.is_free()) {
            return Ok(index);
        }
        if self.slots.len() == MAX_SLOTS {
            return Err(io::Error::other(format!("all {MAX_SLOTS} process slots are in use")));
        }
        self.slots.push(Slot { lane: Lane::new(), process: None, declined_until: None, lagging: None });
        Ok(self.slots.len() - 1)
    }

    /// Starts a new process for worker `id` in a free slot; it becomes the
    /// worker's current one. The descriptors it needs may come from the
    /// reserve: a master at its open-file limit still starts workers.
    pub(super) fn spawn(&mut self, id: usize) -> io::Result<()> {
        self.fd_reserve.release();
        let started = self.start_process(id);
        self.fd_reserve.refill(self.stats_fd.as_fd());
        started
    }

    fn start_process(&mut self, id: usize) -> io::Result<()> {
        let index = self.worker_index(id).ok_or_else(|| io::Error::other(format!("no worker {id}")))?;
        let slot = self.free_slot()?;
        let (master_end, worker_end) = channel_pair()?;
        if let Some(counters) = self.stats.slot(slot) {
            counters.store(&CountersSnapshot::default());
            counters.acks.reset();
            counters.set_state(STATE_STARTING);
            // A worker started during the drain delay is a lame duck from the start.
            counters.set_lame_duck(self.lame_duck.is_some());
        }
        let (listener, accept_tally) = match self.dispatch.balance.worker_listener(id)? {
            WorkerListener::None => (None, None),
            WorkerListener::Shared => (Some(Inherited::Shared(self.listener.as_fd())), None),
            WorkerListener::Own { listener, accept_tally } => (Some(Inherited::Own(listener)), accept_tally),
        };
        let launch = WorkerLaunch {
            id,
            cpu: self.workers[index].cpu,
            stats_slot: slot,
            stats_slots: self.stats.len(),
            channel: worker_end.as_fd(),
            stats: self.stats_fd.as_fd(),
            listener,
            accept_tally,
            backend: self.backend,
            image: &self.image,
            exec: &self.config.exec,
        };
        let pid = spawn_worker(&launch)?;
        drop(worker_end);
        let now = Instant::now();
        self.slots[slot].lane.open(master_end);
        self.slots[slot].declined_until = None;
        self.slots[slot].lagging = None;
        self.slots[slot].process = Some(Process {
            pid,
            worker: id,
            started: now,
            ready: false,
            retiring: false,
            drain_deadline: None,
            killed_for: None,
            ready_by: None,
            heartbeat: 0,
            heartbeat_moved: now,
            killed_by_watchdog: false,
            fd_limit_hits: 0,
            seen_draining: false,
        });
        let worker = &mut self.workers[index];
        let replaced = worker.slot.and(worker.last_pid);
        worker.slot = Some(slot);
        worker.last_pid = Some(pid);
        worker.restart_at = None;
        let cpu = worker.cpu.map_or_else(|| "none".to_string(), |c| c.to_string());
        let (restarts, cpu_field) = (worker.restarts, worker.cpu);
        match replaced {
            Some(old) => crate::log!(info { worker: id, worker_pid: pid, cpu: cpu_field, replacing: old }:
                "worker {id} started (pid {pid}, cpu {cpu}, replacing pid {old})"),
            None if restarts == 0 => crate::log!(info { worker: id, worker_pid: pid, cpu: cpu_field }:
                "worker {id} started (pid {pid}, cpu {cpu})"),
            None => crate::log!(info { worker: id, worker_pid: pid, cpu: cpu_field, restarts: restarts }:
                "worker {id} restarted (pid {pid}, cpu {cpu}, restart {restarts})"),
        }
        Ok(())
    }

    /// Marks processes whose worker reported ready; they start taking connections.
    pub(super) fn notice_ready(&mut self) -> io::Result<()> {
        let mut changed = false;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            if !process.ready && self.stats.slot(index).is_some_and(|c| c.snapshot().state == STATE_READY) {
                process.ready = true;
                changed = true;
            }
        }
        if changed {
            self.note_ready();
            self.refresh_routes();
            self.route_held();
            self.step_reload()?;
        }
        self.announce_when_ready();
        Ok(())
    }

    /// How long a new process has to be ready: `--shutdown-timeout`, at
    /// least [`MIN_READY_TIMEOUT`].
    pub(super) fn ready_timeout(&self) -> Duration {
        self.config.shutdown_timeout.max(MIN_READY_TIMEOUT)
    }

    /// [`Master::ready_timeout`] for a log line, with where it comes from:
    /// `--shutdown-timeout`, or the floor when that is shorter.
    pub(super) fn ready_timeout_text(&self) -> String {
        let given = self.config.shutdown_timeout;
        if given >= MIN_READY_TIMEOUT {
            format!("{:.1} s (--shutdown-timeout)", given.as_secs_f64())
        } else {
            format!(
                "{:.1} s (the least a new process gets; --shutdown-timeout is {:.1} s)",
                MIN_READY_TIMEOUT.as_secs_f64(),
                given.as_secs_f64()
            )
        }
    }

    /// Gives worker `id`'s current process, just started by `why` (`start`,
    /// `restart`, `scale`), until [`Master::ready_timeout`] from now to get ready.
    pub(super) fn set_ready_deadline(&mut self, id: usize, why: &'static str) {
        let Some(slot) = self.worker_index(id).and_then(|i| self.workers[i].slot) else { return };
        let deadline = Instant::now() + self.ready_timeout();
        if let Some(process) = self.slots[slot].process.as_mut() {
            process.ready_by = Some((deadline, why));
        }
    }

    /// Each tick: a process started with the master, by a restart or by a
    /// scale-up and still not ready `--shutdown-timeout` after it started (a
    /// start-up that hangs) is killed; its exit plans the worker's next try
    /// with the restart back-off, as a crash does (an unstable restart).
    /// Without this it would hang on for ever, its worker serving nothing.
    /// A retiring one is left to its drain deadline.
    pub(super) fn kill_unready_starts(&mut self) {
        let now = Instant::now();
        let after = self.ready_timeout_text();
        for process in self.slots.iter_mut().filter_map(|s| s.process.as_mut()) {
            let Some((deadline, why)) = process.ready_by else { continue };
            if process.ready || process.retiring {
                process.ready_by = None;
                continue;
            }
            if now < deadline {
                continue;
            }
            process.ready_by = None;
            let (id, pid) = (process.worker, process.pid);
            crate::log!(warn { worker: id, worker_pid: pid }:
                "{why}: worker {id} (pid {pid}) was not ready after {after}: killing it; \
                 it is restarted with the back-off");
            process.kill("as it was not ready in time");
        }
    }

    /// Logs the listening address once every worker is ready (or time is up),
    /// so whoever waits for that line finds all workers taking connections.
    fn announce_when_ready(&mut self) {
        let Some((local, deadline)) = self.listening else { return };
        if self.all_workers_ready() || Instant::now() >= deadline {
            let workers = self.config.workers;
            let plural = if workers == 1 { "" } else { "s" };
            let mode = self.config.mode.name();
            crate::log!(info { address: local.to_string(), mode: mode, workers: workers }:
                "listening on {local} (mode {mode}, {workers} worker{plural})");
            self.listening = None;
        }
    }

    /// Every worker has a process that is ready.
    pub(super) fn all_workers_ready(&self) -> bool {
        self.workers.iter().all(|w| w.slot.is_some_and(|s| self.slots[s].process.as_ref().is_some_and(|p| p.ready)))
    }

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
    pub(super) fn forgive_stand_still(&mut self) {
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
    pub(super) fn watch_heartbeats(&mut self) {
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
    pub(super) fn close_lanes_of_self_drained(&mut self) {
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
            slot.lane.request_drain();
            closed.push(index);
        }
        if closed.is_empty() {
            return;
        }
        self.refresh_routes();
        for index in closed {
            self.reroute_queue_of(index);
        }
    }

    /// Logs (rate-limited) when a worker reports it ran out of file descriptors.
    pub(super) fn watch_fd_limits(&mut self) {
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

    pub(super) fn kill_all(&mut self, signal: Signal) {
        for process in self.slots.iter().filter_map(|s| s.process.as_ref()) {
            let _ = kill(Pid::from_raw(process.pid as i32), signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_between_looks_counts_up_to_the_stand_still_bound() {
        assert_eq!(unwatched(super::super::TICK), Duration::ZERO);
        assert_eq!(unwatched(STOOD_STILL), Duration::ZERO);
        assert_eq!(unwatched(Duration::from_secs(3)), Duration::from_secs(3) - STOOD_STILL);
    }
}
