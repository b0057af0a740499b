//! Worker processes: the process table, starting a process in a free slot,
//! noticing it is ready (or killing one started by a restart or a scale-up
//! that is not ready in time), and the watchdogs (a loop that stopped
//! turning, a worker at its open-file limit); how a process ends is `reap.rs`.
//! Readiness is `readiness.rs`, the watchdogs `watchdog.rs`.

mod readiness;
mod watchdog;

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringmaster_engine::channel::channel_pair;
use ringmaster_engine::stats::{CountersSnapshot, STATE_STARTING};

use super::stats::Rate;
use super::{Master, MAX_SLOTS};
use crate::backoff::Backoff;
use crate::cpus::cpu_for_worker;
use crate::handoff::Lane;
use crate::modes::WorkerListener;
use crate::spawn::{spawn_worker, Inherited, WorkerLaunch};

/// The `listening on` line waits for every first worker to be ready, but no
/// longer than this (a worker that cannot start must not hide the address).
pub(super) const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);

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

    pub(super) fn kill_all(&mut self, signal: Signal) {
        for process in self.slots.iter().filter_map(|s| s.process.as_ref()) {
            let _ = kill(Pid::from_raw(process.pid as i32), signal);
        }
    }
}
