//! The master: owns the listener, starts one worker per CPU, balances (in
//! `rr` mode) or lets workers accept (`shared`), and supervises: logs every
//! start and exit, restarts crashed workers with backoff, replaces workers
//! one at a time on reload, scales, kills stuck workers, prints stats, and
//! stops gracefully.
//!
//! Everything runs on one thread and one ring: signals arrive through a
//! signalfd, accepts through a multishot accept, hand-offs go out as
//! `sendmsg` submissions, and the control socket is served on the same ring;
//! the master never blocks on a single worker.
//!
//! A *worker* is an id (1, 2, ...) with a CPU; a *process slot* is a stats
//! block slot plus a lane (channel). Each process of a worker gets its own
//! slot, so during a rolling restart the old and the new process of one
//! worker run side by side without sharing counters.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types::{Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use ringmaster_engine::channel::{channel_pair, MAX_FDS};
use ringmaster_engine::stats::{CountersSnapshot, STATE_READY, STATE_STARTING, STATE_STOPPED};
use ringmaster_engine::{uring, StatsBlock};

use crate::config::{MasterConfig, Mode};
use crate::control::{parse_command, Command, ControlSocket};
use crate::cpus::{allowed_cpus, choose_cpus, cpu_for_worker};
use crate::lanes::{Lane, Sent};
use crate::listener::listen;
use crate::refuse::refuse;
use crate::rr::RoundRobin;
use crate::signals::{next_signal, signal_fd, signal_name};
use crate::spawn::{spawn_worker, WorkerLaunch};
use crate::stats_line::{stats_json, WorkerRow};

/// Most worker processes at once (slots in the stats block), old and new together.
pub const MAX_SLOTS: usize = 1024;
/// How often the master checks deadlines, restarts and heartbeats.
const TICK: Duration = Duration::from_millis(100);
/// First restart delay of a crashed worker; it grows by half each crash.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A worker up this long is healthy again: its next crash restarts it quickly.
const HEALTHY_UPTIME: Duration = Duration::from_secs(30);
/// How long a worker that declined connections (full, or out of fds) is
/// skipped before it is offered new ones.
const DECLINED_PAUSE: Duration = Duration::from_millis(100);
/// Least time between two log lines about running out of file descriptors.
const FD_LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// The `listening on` line waits for every first worker to be ready, but no
/// longer than this (a worker that cannot start must not hide the address).
const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);

/// Signals the master handles.
const SIGNALS: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGCHLD,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Signal = 1,
    Accept,
    LaneSend,
    Tick,
    Ignore,
    ControlAccept,
    ControlRecv,
    ControlSend,
    LaneRecv,
}

fn token(op: Op, index: usize, epoch: u32) -> u64 {
    (op as u64) << 56 | u64::from(epoch) << 24 | index as u64 & 0xff_ffff
}

fn untoken(user_data: u64) -> (Option<Op>, usize, u32) {
    let op = match user_data >> 56 {
        1 => Some(Op::Signal),
        2 => Some(Op::Accept),
        3 => Some(Op::LaneSend),
        4 => Some(Op::Tick),
        5 => Some(Op::Ignore),
        6 => Some(Op::ControlAccept),
        7 => Some(Op::ControlRecv),
        8 => Some(Op::ControlSend),
        9 => Some(Op::LaneRecv),
        _ => None,
    };
    (op, (user_data & 0xff_ffff) as usize, (user_data >> 24) as u32)
}

/// A running worker process.
#[derive(Debug)]
struct Process {
    pid: u32,
    worker: usize,
    started: Instant,
    ready: bool,
    retiring: bool,
    heartbeat: u64,
    heartbeat_moved: Instant,
    killed_by_watchdog: bool,
    /// The worker's `fd_limit_hits` when last looked at.
    fd_limit_hits: u64,
}

/// A process slot: its lane and the process using it.
#[derive(Debug)]
struct Slot {
    lane: Lane,
    process: Option<Process>,
    /// The worker declined connections (full, or at its fd limit): skipped
    /// until then.
    declined_until: Option<Instant>,
}

/// A worker id, kept (with its CPU) across restarts.
#[derive(Debug)]
struct Worker {
    id: usize,
    cpu: Option<usize>,
    /// Slot of the current process (a retiring older one is not counted here).
    slot: Option<usize>,
    last_pid: Option<u32>,
    restarts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
    /// Counts of this worker's processes that have exited.
    totals: CountersSnapshot,
    /// Scaled away: it exits after draining and is not restarted.
    retired: bool,
}

/// Runs the master until it is stopped; errors are one line for the user.
pub fn run_master(config: MasterConfig) -> Result<(), String> {
    let mut master = Master::start(config)?;
    master.serve().map_err(|e| format!("master loop failed: {e}"))?;
    master.print_stats();
    Ok(())
}

struct Master {
    ring: IoUring,
    config: MasterConfig,
    listener: OwnedFd,
    signals: OwnedFd,
    stats: StatsBlock,
    stats_fd: OwnedFd,
    cpus: Vec<usize>,
    slots: Vec<Slot>,
    workers: Vec<Worker>,
    /// Slots that take connections now, in worker order.
    routes: Vec<usize>,
    rr: RoundRobin,
    /// Accepted connections no worker can take yet: kept, never dropped.
    held: Vec<RawFd>,
    scratch: Vec<RawFd>,
    /// Connections a worker declined, to route elsewhere.
    declined: Vec<RawFd>,
    /// Connections refused with `503` because no worker could take them.
    refused: u64,
    /// When each kind of fd-limit message was last logged (rate limit).
    fd_limit_logged: Option<Instant>,
    accepting: bool,
    reload_queue: VecDeque<usize>,
    /// The worker being replaced, and the slot of its old process.
    reloading: Option<(usize, usize)>,
    control: Option<ControlSocket>,
    stop_deadline: Option<Instant>,
    stragglers_killed: bool,
    exit_grace: Option<Instant>,
    /// The bound address and the latest time to log it, until it is logged.
    listening: Option<(SocketAddr, Instant)>,
    tick: Box<Timespec>,
    completions: Vec<uring::Completion>,
}

impl Master {
    fn start(config: MasterConfig) -> Result<Master, String> {
        if config.workers == 0 || config.workers > MAX_SLOTS / 2 {
            return Err(format!("--workers must be between 1 and {}", MAX_SLOTS / 2));
        }
        // Workers inherit the raised limit; failing to raise it is not fatal.
        match crate::rlimit::raise_fd_limit() {
            Ok(limit) => warn_if_fds_fall_short(&config, limit),
            Err(e) => crate::log!("cannot raise the open-file limit: {e}"),
        }
        let cpus = if config.pin { choose_cpus(config.cpus.as_deref(), &allowed_cpus())? } else { Vec::new() };
        let (listener, local) =
            listen(config.bind, config.backlog).map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
        let control = match &config.control {
            Some(path) => Some(ControlSocket::bind(path)?),
            None => None,
        };
        let signals = signal_fd(&SIGNALS).map_err(|e| format!("cannot set up signals: {e}"))?;
        let (stats, stats_fd) =
            StatsBlock::create_shared(MAX_SLOTS).map_err(|e| format!("cannot create the stats block: {e}"))?;
        let ring = IoUring::builder()
            .setup_cqsize(8192)
            .build(1024)
            .map_err(|e| format!("cannot create an io_uring (is io_uring enabled?): {e}"))?;
        let mut master = Master {
            ring,
            listener,
            signals,
            stats,
            stats_fd,
            cpus,
            slots: Vec::with_capacity(MAX_SLOTS),
            workers: Vec::with_capacity(config.workers),
            routes: Vec::with_capacity(MAX_SLOTS),
            rr: RoundRobin::default(),
            held: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
            declined: Vec::with_capacity(MAX_FDS),
            refused: 0,
            fd_limit_logged: None,
            accepting: false,
            reload_queue: VecDeque::new(),
            reloading: None,
            control,
            stop_deadline: None,
            stragglers_killed: false,
            exit_grace: None,
            listening: None,
            tick: Box::new(Timespec::from(TICK)),
            completions: Vec::with_capacity(8192),
            config,
        };
        for _ in 0..master.config.workers {
            master.add_worker().map_err(|e| format!("cannot start a worker: {e}"))?;
        }
        master.listening = Some((local, Instant::now() + ANNOUNCE_AFTER));
        Ok(master)
    }

    fn serve(&mut self) -> io::Result<()> {
        self.arm_signals()?;
        self.arm_accept()?;
        self.arm_control_accept()?;
        self.arm_tick()?;
        loop {
            if self.stop_deadline.is_some() && self.slots.iter().all(|s| s.process.is_none()) {
                // Let a control client read its last reply (bounded: one second).
                let replying = self.control.as_ref().is_some_and(|c| c.has_pending_output());
                let grace = *self.exit_grace.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
                if !replying || Instant::now() >= grace {
                    return Ok(());
                }
            }
            uring::submit_and_wait(&mut self.ring)?;
            uring::reap(&mut self.ring, &mut self.completions);
            for i in 0..self.completions.len() {
                let (user_data, result, flags) = self.completions[i];
                self.complete(user_data, result, flags)?;
            }
            self.notice_ready()?;
            self.pump_lanes()?;
        }
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: the pointers an entry carries (lane messages, control buffers,
        // the tick) live in `self`, boxed or in slots that are not reused while
        // an op is in flight, until the completion arrives or the ring drops.
        unsafe { uring::push(&mut self.ring, &entry) }
    }

    /// Submits an op whose success needs no handling: no completion unless it fails.
    fn push_ignored(&mut self, entry: squeue::Entry) -> io::Result<()> {
        self.push(entry.user_data(token(Op::Ignore, 0, 0)).flags(squeue::Flags::SKIP_SUCCESS))
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) -> io::Result<()> {
        let (op, index, epoch) = untoken(user_data);
        let more = cqueue::more(flags);
        match op {
            Some(Op::Signal) => {
                self.on_signals()?;
                if !more {
                    self.arm_signals()?;
                }
                Ok(())
            }
            Some(Op::Accept) => self.on_accept(result, more),
            Some(Op::LaneSend) => self.on_lane_sent(index, result),
            Some(Op::LaneRecv) => self.on_lane_received(index, result),
            Some(Op::Tick) => self.on_tick(),
            Some(Op::ControlAccept) => self.on_control_accept(result, more),
            Some(Op::ControlRecv) => self.on_control_recv(index, epoch, result),
            Some(Op::ControlSend) => self.on_control_sent(index, epoch, result),
            Some(Op::Ignore) | None => Ok(()),
        }
    }

    fn arm_signals(&mut self) -> io::Result<()> {
        let poll = opcode::PollAdd::new(Fd(self.signals.as_raw_fd()), libc::POLLIN as u32).multi(true).build();
        self.push(poll.user_data(token(Op::Signal, 0, 0)))
    }

    // --- workers and their processes ---------------------------------------------------------

    fn add_worker(&mut self) -> io::Result<()> {
        let id = self.workers.iter().map(|w| w.id).max().unwrap_or(0) + 1;
        let cpu = if self.config.pin { Some(cpu_for_worker(&self.cpus, id)) } else { None };
        self.workers.push(Worker {
            id,
            cpu,
            slot: None,
            last_pid: None,
            restarts: 0,
            backoff: FIRST_BACKOFF,
            restart_at: None,
            totals: CountersSnapshot::default(),
            retired: false,
        });
        self.spawn(id)
    }

    fn worker_index(&self, id: usize) -> Option<usize> {
        self.workers.iter().position(|w| w.id == id)
    }

    /// A slot no process uses and whose lane is idle, making one if needed.
    fn free_slot(&mut self) -> io::Result<usize> {
        if let Some(index) = self.slots.iter().position(|s| s.process.is_none() && s.lane.is_free()) {
            return Ok(index);
        }
        if self.slots.len() == MAX_SLOTS {
            return Err(io::Error::other(format!("all {MAX_SLOTS} process slots are in use")));
        }
        self.slots.push(Slot { lane: Lane::new(), process: None, declined_until: None });
        Ok(self.slots.len() - 1)
    }

    /// Starts a new process for worker `id` in a free slot; it becomes the worker's current one.
    fn spawn(&mut self, id: usize) -> io::Result<()> {
        let index = self.worker_index(id).ok_or_else(|| io::Error::other(format!("no worker {id}")))?;
        let slot = self.free_slot()?;
        let (master_end, worker_end) = channel_pair()?;
        if let Some(counters) = self.stats.slot(slot) {
            counters.store(&CountersSnapshot::default());
            counters.set_state(STATE_STARTING);
        }
        let worker = &self.workers[index];
        let launch = WorkerLaunch {
            id,
            cpu: worker.cpu,
            stats_slot: slot,
            stats_slots: self.stats.len(),
            channel: worker_end.as_fd(),
            stats: self.stats_fd.as_fd(),
            listener: (self.config.mode == Mode::Shared).then(|| self.listener.as_fd()),
            exec: &self.config.exec,
        };
        let pid = spawn_worker(&launch)?;
        drop(worker_end);
        let now = Instant::now();
        self.slots[slot].lane.open(master_end);
        self.slots[slot].declined_until = None;
        self.slots[slot].process = Some(Process {
            pid,
            worker: id,
            started: now,
            ready: false,
            retiring: false,
            heartbeat: 0,
            heartbeat_moved: now,
            killed_by_watchdog: false,
            fd_limit_hits: 0,
        });
        let worker = &mut self.workers[index];
        let replaced = worker.slot.and(worker.last_pid);
        worker.slot = Some(slot);
        worker.last_pid = Some(pid);
        worker.restart_at = None;
        let cpu = worker.cpu.map_or_else(|| "none".to_string(), |c| c.to_string());
        match replaced {
            Some(old) => crate::log!("worker {id} started (pid {pid}, cpu {cpu}, replacing pid {old})"),
            None if worker.restarts == 0 => crate::log!("worker {id} started (pid {pid}, cpu {cpu})"),
            None => crate::log!("worker {id} restarted (pid {pid}, cpu {cpu}, restart {})", worker.restarts),
        }
        Ok(())
    }

    /// Marks processes whose worker reported ready; they start taking connections.
    fn notice_ready(&mut self) -> io::Result<()> {
        let mut changed = false;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            if !process.ready && self.stats.slot(index).is_some_and(|c| c.snapshot().state == STATE_READY) {
                process.ready = true;
                changed = true;
            }
        }
        if changed {
            self.refresh_routes();
            self.route_held();
            self.step_reload()?;
        }
        self.announce_when_ready();
        Ok(())
    }

    /// Logs the listening address once every worker is ready (or time is up),
    /// so whoever waits for that line finds all workers taking connections.
    fn announce_when_ready(&mut self) {
        let Some((local, deadline)) = self.listening else { return };
        let all_ready = self
            .workers
            .iter()
            .all(|w| w.slot.is_some_and(|s| self.slots[s].process.as_ref().is_some_and(|p| p.ready)));
        if all_ready || Instant::now() >= deadline {
            log_listening(local, &self.config);
            self.listening = None;
        }
    }

    /// Rebuilds the list of slots that take connections: ready, not retiring, in worker order.
    fn refresh_routes(&mut self) {
        self.routes.clear();
        for worker in &self.workers {
            let Some(slot) = worker.slot else { continue };
            let takes = self.slots[slot]
                .process
                .as_ref()
                .is_some_and(|p| p.ready && !p.retiring && self.slots[slot].lane.is_routable());
            if takes {
                self.routes.push(slot);
            }
        }
    }

    /// Tells a process to finish its connections and exit; it takes no new ones from now.
    fn retire(&mut self, slot: usize) {
        if let Some(process) = self.slots[slot].process.as_mut() {
            process.retiring = true;
            self.slots[slot].lane.request_drain();
        }
        self.refresh_routes();
    }

    /// Reaps every exited child: log it, keep its counts, re-route what its lane held, plan a restart.
    fn reap(&mut self) -> io::Result<()> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
                Ok(status) => status,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let (pid, how) = match status {
                WaitStatus::Exited(pid, code) => (pid, format!("exited with code {code}")),
                WaitStatus::Signaled(pid, signal, _) => {
                    (pid, format!("killed by signal {} ({})", signal as i32, signal.as_str()))
                }
                _ => continue,
            };
            let pid = pid.as_raw() as u32;
            let Some(slot) = self.slots.iter().position(|s| s.process.as_ref().is_some_and(|p| p.pid == pid)) else {
                continue;
            };
            self.process_exited(slot, &how)?;
        }
    }

    fn process_exited(&mut self, slot: usize, how: &str) -> io::Result<()> {
        let Some(process) = self.slots[slot].process.take() else { return Ok(()) };
        let final_counts = self.stats.slot(slot).map(|c| c.snapshot()).unwrap_or_default();
        if let Some(counters) = self.stats.slot(slot) {
            counters.live.store(0, std::sync::atomic::Ordering::Relaxed);
            counters.set_state(STATE_STOPPED);
        }
        crate::log!("worker {} (pid {}) {how}", process.worker, process.pid);
        self.slots[slot].lane.mark_gone();
        self.stop_receiving(slot)?;
        if let Some(index) = self.worker_index(process.worker) {
            let worker = &mut self.workers[index];
            worker.totals.accepted += final_counts.accepted;
            worker.totals.requests += final_counts.requests;
            worker.totals.rejected += final_counts.rejected;
            if worker.slot == Some(slot) {
                worker.slot = None;
                if worker.retired {
                    self.workers.remove(index);
                } else if self.stop_deadline.is_none() {
                    self.plan_restart(index, process.started);
                }
            }
        }
        self.refresh_routes();
        self.settle_gone_lane(slot)?;
        if self.reloading.is_some_and(|(_, old)| old == slot) {
            self.reloading = None;
        }
        self.step_reload()
    }

    fn plan_restart(&mut self, index: usize, started: Instant) {
        let worker = &mut self.workers[index];
        if started.elapsed() >= HEALTHY_UPTIME {
            worker.backoff = FIRST_BACKOFF;
        }
        let delay = worker.backoff;
        worker.backoff = worker.backoff.mul_f64(1.5).min(MAX_BACKOFF);
        worker.restart_at = Some(Instant::now() + delay);
        crate::log!("worker {} restarting in {} ms", worker.id, delay.as_millis());
    }

    fn restart_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            if self.workers[index].restart_at.is_none_or(|at| at > now) {
                continue;
            }
            self.workers[index].restarts += 1;
            let id = self.workers[index].id;
            if let Err(e) = self.spawn(id) {
                crate::log!("cannot restart worker {id}: {e}");
                self.plan_restart(index, Instant::now());
            }
        }
    }

    /// Kills ready workers whose loop has not turned for `--watchdog`.
    fn watch_heartbeats(&mut self) {
        let Some(limit) = self.config.watchdog else { return };
        let now = Instant::now();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            let Some(counters) = self.stats.slot(index) else { continue };
            let beat = counters.snapshot().heartbeat;
            if beat != process.heartbeat || !process.ready {
                process.heartbeat = beat;
                process.heartbeat_moved = now;
            } else if now.duration_since(process.heartbeat_moved) >= limit && !process.killed_by_watchdog {
                crate::log!(
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

    // --- reload and scale ---------------------------------------------------------------------

    fn begin_reload(&mut self) -> io::Result<usize> {
        if self.stop_deadline.is_some() {
            return Ok(0);
        }
        let ids: Vec<usize> = self.workers.iter().filter(|w| !w.retired).map(|w| w.id).collect();
        for id in &ids {
            if !self.reload_queue.contains(id) && self.reloading.map(|(w, _)| w) != Some(*id) {
                self.reload_queue.push_back(*id);
            }
        }
        crate::log!("reload: replacing {} workers one at a time", ids.len());
        self.step_reload()?;
        Ok(ids.len())
    }

    /// Moves the rolling restart on: the next worker gets a new process, and
    /// its old one is retired only once the new one is ready.
    fn step_reload(&mut self) -> io::Result<()> {
        loop {
            if let Some((id, old_slot)) = self.reloading {
                let old_alive = self.slots[old_slot].process.is_some();
                let new_ready = self
                    .worker_index(id)
                    .and_then(|i| self.workers[i].slot)
                    .is_some_and(|s| s != old_slot && self.slots[s].process.as_ref().is_some_and(|p| p.ready));
                if !old_alive {
                    self.reloading = None;
                    continue;
                }
                if new_ready && !self.slots[old_slot].process.as_ref().is_some_and(|p| p.retiring) {
                    self.retire(old_slot);
                }
                return Ok(());
            }
            let Some(id) = self.reload_queue.pop_front() else { return Ok(()) };
            let Some(index) = self.worker_index(id) else { continue };
            let worker = &self.workers[index];
            // A worker waiting to restart gets a new process anyway.
            let Some(old_slot) = worker.slot.filter(|_| !worker.retired) else { continue };
            self.spawn(id)?;
            self.reloading = Some((id, old_slot));
        }
    }

    fn scale(&mut self, target: usize) -> io::Result<()> {
        if self.stop_deadline.is_some() {
            return Ok(());
        }
        let active: Vec<usize> = self.workers.iter().filter(|w| !w.retired).map(|w| w.id).collect();
        crate::log!("scaling from {} to {target} workers", active.len());
        for _ in active.len()..target {
            self.add_worker()?;
        }
        for &id in active.iter().rev().take(active.len().saturating_sub(target)) {
            let Some(index) = self.worker_index(id) else { continue };
            self.workers[index].retired = true;
            self.workers[index].restart_at = None;
            self.reload_queue.retain(|&queued| queued != id);
            match self.workers[index].slot {
                Some(slot) => self.retire(slot),
                None => {
                    self.workers.remove(index);
                }
            }
        }
        Ok(())
    }

    fn active_workers(&self) -> usize {
        self.workers.iter().filter(|w| !w.retired).count()
    }

    // --- connections ------------------------------------------------------------------------

    /// True when the master should accept: always in `rr`; in `shared` only
    /// while every ready worker is full, so that clients get a `503` instead
    /// of waiting in the queue for room that may not come.
    fn master_accepts(&self) -> bool {
        match self.config.mode {
            Mode::RoundRobin => true,
            Mode::Shared => self.every_worker_full(),
        }
    }

    fn every_worker_full(&self) -> bool {
        let max = self.config.engine.max_conns as u64;
        !self.routes.is_empty()
            && self.routes.iter().all(|&slot| self.stats.slot(slot).is_some_and(|c| c.snapshot().live >= max))
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        // With no worker to take them, held connections are capped at the backlog;
        // past that, new ones wait in the kernel's queue instead of costing fds here.
        let holding_enough = self.held.len() >= self.config.backlog as usize;
        if !self.master_accepts() {
            // `shared`: a worker has room again; it accepts from here on.
            if self.accepting {
                self.push_ignored(opcode::AsyncCancel::new(token(Op::Accept, 0, 0)).build())?;
            }
            return Ok(());
        }
        if self.accepting || self.stop_deadline.is_some() || holding_enough {
            return Ok(());
        }
        let accept = opcode::AcceptMulti::new(Fd(self.listener.as_raw_fd())).flags(libc::SOCK_CLOEXEC).build();
        self.push(accept.user_data(token(Op::Accept, 0, 0)))?;
        self.accepting = true;
        Ok(())
    }

    fn on_accept(&mut self, result: i32, more: bool) -> io::Result<()> {
        if !more {
            self.accepting = false;
        }
        if result >= 0 && self.config.mode == Mode::Shared {
            // Accepted only because every worker is full.
            self.refused += 1;
            // SAFETY: a successful accept returns a new fd that nothing else owns.
            refuse(unsafe { OwnedFd::from_raw_fd(result) });
        } else if result >= 0 {
            self.route(result);
            if self.accepting && self.held.len() >= self.config.backlog as usize {
                self.push_ignored(opcode::AsyncCancel::new(token(Op::Accept, 0, 0)).build())?;
            }
        }
        // Out of fds or memory: the tick re-arms rather than spinning now.
        let starved = matches!(-result, libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS);
        if matches!(-result, libc::EMFILE | libc::ENFILE) {
            let held = self.held.len() + self.slots.iter().map(|s| s.lane.held_fds()).sum::<usize>();
            self.log_fd_limit(format_args!(
                "the master is at its open-file limit ({}): accepting pauses; it holds {held} connections \
                 not yet taken by a worker",
                fd_limit_text()
            ));
        }
        if !self.accepting && !starved {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Gives an accepted connection to the next worker in turn that can take
    /// it; holds it while no worker is ready; refuses it (`503`) when every
    /// ready worker declined lately, or the master is stopping.
    fn route(&mut self, fd: RawFd) {
        let now = Instant::now();
        let slots = &self.slots;
        let takes = |slot: usize| slots[slot].declined_until.is_none_or(|until| until <= now);
        match self.rr.pick(&self.routes, takes) {
            Some(slot) => self.slots[slot].lane.enqueue(fd),
            None if self.routes.is_empty() && self.stop_deadline.is_none() => self.held.push(fd),
            None => {
                self.refused += 1;
                // SAFETY: `fd` is an accepted connection the master owns and hands
                // to nobody else from here.
                refuse(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }

    fn route_held(&mut self) {
        if self.routes.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for &fd in &held {
            self.route(fd);
        }
        self.held = held;
        self.held.clear();
    }

    fn reroute_scratch(&mut self) {
        let undelivered = std::mem::take(&mut self.scratch);
        for &fd in &undelivered {
            self.route(fd);
        }
        self.scratch = undelivered;
        self.scratch.clear();
    }

    /// Sends what every lane has queued (one message in flight per lane) and
    /// keeps a receive armed for each worker's acknowledgements.
    fn pump_lanes(&mut self) -> io::Result<()> {
        for index in 0..self.slots.len() {
            let epoch = self.slots[index].lane.epoch;
            if let Some((channel, header)) = self.slots[index].lane.next_send() {
                let send = opcode::SendMsg::new(Fd(channel), header).flags(libc::MSG_NOSIGNAL as u32).build();
                self.push(send.user_data(token(Op::LaneSend, index, epoch)))?;
            }
            if let Some((channel, buffer, len)) = self.slots[index].lane.next_recv() {
                let recv = opcode::Recv::new(Fd(channel), buffer, len).build();
                self.push(recv.user_data(token(Op::LaneRecv, index, epoch)))?;
            }
        }
        Ok(())
    }

    fn on_lane_sent(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        match slot.lane.on_sent(result >= 0, &mut self.scratch) {
            // Into a worker that has since died, maybe: settle its lane if so.
            Sent::Delivered => self.settle_gone_lane(index),
            Sent::Finished => {
                self.stop_receiving(index)?;
                self.close_scratch()
            }
            Sent::Failed => {
                self.refresh_routes();
                self.reroute_scratch();
                self.stop_receiving(index)?;
                self.settle_gone_lane(index)
            }
        }
    }

    /// Once a dead worker's lane has no op in flight: close what it acknowledged,
    /// hand everything else to the live workers.
    fn settle_gone_lane(&mut self, index: usize) -> io::Result<()> {
        if !self.slots[index].lane.can_finish() {
            return Ok(());
        }
        let mut acknowledged = Vec::new();
        self.slots[index].lane.finish_gone(&mut acknowledged, &mut self.scratch);
        self.refresh_routes();
        self.reroute_scratch();
        self.scratch = acknowledged;
        self.close_scratch()
    }

    /// A worker acknowledged a batch: ours of the connections it adopted can
    /// close; those it did not take go to another worker, and it gets no new
    /// ones for a while.
    fn on_lane_received(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        slot.lane.on_received(result, &mut self.scratch, &mut self.declined);
        if !self.declined.is_empty() {
            slot.declined_until = Some(Instant::now() + DECLINED_PAUSE);
            let declined = std::mem::take(&mut self.declined);
            for &fd in &declined {
                self.route(fd);
            }
            self.declined = declined;
            self.declined.clear();
        }
        self.close_scratch()?;
        self.settle_gone_lane(index)
    }

    /// Cancels a lane's armed receive once its channel is closed, so the
    /// socket really closes and the worker sees the end of its channel.
    fn stop_receiving(&mut self, index: usize) -> io::Result<()> {
        let lane = &self.slots[index].lane;
        if lane.is_receiving() {
            let cancel = opcode::AsyncCancel::new(token(Op::LaneRecv, index, lane.epoch)).build();
            self.push_ignored(cancel)?;
        }
        Ok(())
    }

    /// Closes the master's copies of connections a worker has adopted.
    fn close_scratch(&mut self) -> io::Result<()> {
        for i in 0..self.scratch.len() {
            let close = opcode::Close::new(Fd(self.scratch[i])).build();
            self.push_ignored(close)?;
        }
        self.scratch.clear();
        Ok(())
    }

    // --- signals, time, stopping ---------------------------------------------------------------

    fn on_signals(&mut self) -> io::Result<()> {
        while let Some(signo) = next_signal(&self.signals)? {
            match Signal::try_from(signo) {
                Ok(Signal::SIGCHLD) => self.reap()?,
                Ok(Signal::SIGUSR1) => self.print_stats(),
                Ok(Signal::SIGHUP) => {
                    self.begin_reload()?;
                }
                Ok(Signal::SIGTTIN) => self.scale(self.active_workers() + 1)?,
                Ok(Signal::SIGTTOU) => self.scale(self.active_workers().saturating_sub(1).max(1))?,
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                    self.begin_stop(&signal_name(signo), signo)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn begin_stop(&mut self, why: &str, signo: i32) -> io::Result<()> {
        if self.stop_deadline.is_some() {
            if signo == libc::SIGINT {
                crate::log!("second SIGINT: killing workers now");
                self.kill_all(Signal::SIGKILL);
            }
            return Ok(());
        }
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        crate::log!("{why} received: stopping {running} workers");
        self.stop_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        if self.accepting {
            let cancel = opcode::AsyncCancel::new(token(Op::Accept, 0, 0)).build();
            self.push_ignored(cancel)?;
        }
        self.reload_queue.clear();
        for worker in &mut self.workers {
            worker.restart_at = None;
        }
        // Lanes send what they hold, then Drain, then close: workers serve it all.
        for slot in &mut self.slots {
            if let Some(process) = slot.process.as_mut() {
                process.retiring = true;
            }
            slot.lane.request_drain();
        }
        self.refresh_routes();
        for fd in std::mem::take(&mut self.held) {
            self.refused += 1;
            // SAFETY: a held connection is owned by the master alone.
            refuse(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(())
    }

    fn kill_all(&mut self, signal: Signal) {
        for process in self.slots.iter().filter_map(|s| s.process.as_ref()) {
            let _ = kill(Pid::from_raw(process.pid as i32), signal);
        }
    }

    fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token(Op::Tick, 0, 0)))
    }

    fn on_tick(&mut self) -> io::Result<()> {
        match self.stop_deadline {
            Some(deadline) if Instant::now() >= deadline && !self.stragglers_killed => {
                crate::log!("shutdown timeout: killing the workers still running");
                self.kill_all(Signal::SIGKILL);
                self.stragglers_killed = true;
            }
            Some(_) => {}
            None => {
                self.restart_due();
                self.arm_accept()?;
                self.arm_control_accept()?;
            }
        }
        self.watch_heartbeats();
        self.watch_fd_limits();
        self.arm_tick()
    }

    /// Logs (rate-limited) when a worker reports it ran out of file descriptors.
    fn watch_fd_limits(&mut self) {
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
            self.log_fd_limit(format_args!(
                "worker {id} (pid {pid}) is at its open-file limit ({}): connections it cannot take go to other \
                 workers, or get 503 when none can",
                fd_limit_text()
            ));
        }
    }

    fn log_fd_limit(&mut self, message: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.fd_limit_logged.is_some_and(|at| now.duration_since(at) < FD_LIMIT_LOG_EVERY) {
            return;
        }
        self.fd_limit_logged = Some(now);
        crate::log!("{message}");
    }

    fn stats_line(&self) -> String {
        let rows: Vec<WorkerRow> = self
            .workers
            .iter()
            .map(|w| {
                let mut counts = w.totals;
                counts.live = 0;
                counts.state = STATE_STOPPED;
                let mut uptime_ms = 0;
                for (index, slot) in self.slots.iter().enumerate() {
                    let Some(process) = slot.process.as_ref().filter(|p| p.worker == w.id) else { continue };
                    let Some(current) = self.stats.slot(index).map(|c| c.snapshot()) else { continue };
                    counts.accepted += current.accepted;
                    counts.requests += current.requests;
                    counts.rejected += current.rejected;
                    counts.live += current.live;
                    if w.slot == Some(index) {
                        counts.state = current.state;
                        uptime_ms = process.started.elapsed().as_millis() as u64;
                    }
                }
                WorkerRow {
                    id: w.id,
                    pid: w.last_pid,
                    running: w.slot.is_some(),
                    cpu: w.cpu,
                    counts,
                    restarts: w.restarts,
                    uptime_ms,
                }
            })
            .collect();
        stats_json(self.config.mode.name(), self.refused, &rows)
    }

    fn print_stats(&self) {
        let line = self.stats_line();
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    // --- the control socket -----------------------------------------------------------------------

    fn arm_control_accept(&mut self) -> io::Result<()> {
        let Some(entry) = self.control.as_mut().and_then(|c| c.accept_entry()) else { return Ok(()) };
        self.push(entry.user_data(token(Op::ControlAccept, 0, 0)))
    }

    fn on_control_accept(&mut self, result: i32, more: bool) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        if !more {
            control.accept_ended();
        }
        if result >= 0 {
            if let Some((index, epoch, entry)) = control.adopt(result) {
                self.push(entry.user_data(token(Op::ControlRecv, index, epoch)))?;
            }
        }
        if !more && self.stop_deadline.is_none() && result != -libc::EMFILE {
            self.arm_control_accept()?;
        }
        Ok(())
    }

    fn on_control_recv(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let lines = control.received(index, epoch, result);
        for line in lines {
            let reply = self.answer(&line)?;
            if let Some(control) = self.control.as_mut() {
                control.reply(index, epoch, &reply);
            }
        }
        self.pump_control(index, epoch)
    }

    fn on_control_sent(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.sent(index, epoch, result);
        self.pump_control(index, epoch)
    }

    fn pump_control(&mut self, index: usize, epoch: u32) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let (send, recv) = control.next_ops(index, epoch);
        if let Some(entry) = send {
            self.push(entry.user_data(token(Op::ControlSend, index, epoch)))?;
        }
        if let Some(entry) = recv {
            self.push(entry.user_data(token(Op::ControlRecv, index, epoch)))?;
        }
        Ok(())
    }

    /// Runs one control command; the reply line (without newline).
    fn answer(&mut self, line: &[u8]) -> io::Result<String> {
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(reply) => return Ok(reply),
        };
        Ok(match command {
            Command::Status => self.stats_line(),
            Command::Reload if self.stop_deadline.is_some() => "error: stopping".to_string(),
            Command::Reload => format!("ok reloading {} workers", self.begin_reload()?),
            Command::Scale(_) if self.stop_deadline.is_some() => "error: stopping".to_string(),
            Command::Scale(n) if n > MAX_SLOTS / 2 => format!("error: at most {} workers", MAX_SLOTS / 2),
            Command::Scale(n) => {
                self.scale(n)?;
                format!("ok scaling to {n} workers")
            }
            Command::Stop => {
                self.begin_stop("stop command", libc::SIGTERM)?;
                "ok stopping".to_string()
            }
        })
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // Connections no worker took are closed; workers get SIGTERM from their
        // parent-death signal if the master leaves before them.
        for fd in self.held.drain(..) {
            close_fd(fd);
        }
    }
}

/// The open-file limit, for log lines: `RLIMIT_NOFILE 64`.
fn fd_limit_text() -> String {
    match crate::rlimit::fd_limit() {
        Ok(limit) => format!("RLIMIT_NOFILE {limit}"),
        Err(e) => format!("RLIMIT_NOFILE unknown: {e}"),
    }
}

fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is an accepted connection the master owns and no longer uses.
    unsafe { libc::close(fd) };
}

/// Warns at start when `--max-conns` cannot be reached: every worker is a
/// process with its own `RLIMIT_NOFILE`, and the master in `rr` mode holds a
/// copy of each connection until a worker takes it.
fn warn_if_fds_fall_short(config: &MasterConfig, limit: u64) {
    let per_worker = crate::rlimit::fds_needed(config.engine.max_conns);
    if per_worker > limit {
        crate::log!(
            "warning: --max-conns {} needs about {per_worker} open files per worker but RLIMIT_NOFILE is {limit}: \
             each worker will take about {} connections (the rest go to other workers, or get 503); \
             raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --max-conns",
            config.engine.max_conns,
            limit.saturating_sub(per_worker - config.engine.max_conns as u64),
        );
    }
    let total = (config.engine.max_conns as u64).saturating_mul(config.workers as u64);
    if let Some(system) = crate::rlimit::system_file_max().filter(|&max| total > max) {
        crate::log!(
            "warning: --max-conns {} x {} workers = {total} connections exceeds the system's fs.file-max ({system})",
            config.engine.max_conns,
            config.workers,
        );
    }
}

fn log_listening(local: SocketAddr, config: &MasterConfig) {
    crate::log!(
        "listening on {local} (mode {}, {} worker{})",
        config.mode.name(),
        config.workers,
        if config.workers == 1 { "" } else { "s" }
    );
}
