//! The master: owns the listener, starts one worker per CPU, balances (in
//! `rr` mode) or lets workers accept (`shared`), and supervises: logs every
//! start and exit, restarts crashed workers with backoff, prints stats, and
//! stops gracefully on SIGTERM, SIGINT or SIGQUIT.
//!
//! Everything runs on one thread and one ring: signals arrive through a
//! signalfd, accepts through a multishot accept, and hand-offs go out as
//! `sendmsg` submissions; the master never blocks on a single worker.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types::{Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use ringmaster_engine::channel::channel_pair;
use ringmaster_engine::stats::{STATE_STARTING, STATE_STOPPED};
use ringmaster_engine::StatsBlock;

use crate::config::{MasterConfig, Mode};
use crate::cpus::{allowed_cpus, choose_cpus, cpu_for_worker};
use crate::lanes::{Lane, Sent};
use crate::listener::listen;
use crate::rr::RoundRobin;
use crate::signals::{next_signal, signal_fd, signal_name};
use crate::spawn::{spawn_worker, WorkerLaunch};
use crate::stats_line::{stats_json, WorkerRow};

/// Most workers a master runs (slots in the stats block).
pub const MAX_WORKERS: usize = 1024;
/// How often the master checks deadlines and restarts.
const TICK: Duration = Duration::from_millis(100);
/// First restart delay of a crashed worker; it grows by half each crash.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A worker up this long is healthy again: its next crash restarts it quickly.
const HEALTHY_UPTIME: Duration = Duration::from_secs(30);

/// Signals the master handles.
const SIGNALS: [Signal; 5] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGCHLD];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Signal = 1,
    Accept,
    LaneSend,
    Tick,
    Ignore,
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
        _ => None,
    };
    (op, (user_data & 0xff_ffff) as usize, (user_data >> 24) as u32)
}

/// One worker process slot: worker `id` keeps its slot (and CPU) across restarts.
#[derive(Debug)]
struct WorkerProc {
    id: usize,
    cpu: Option<usize>,
    /// The running process.
    pid: Option<u32>,
    /// The latest process, running or not (what the stats line shows).
    last_pid: Option<u32>,
    started: Instant,
    restarts: u32,
    backoff: Duration,
    restart_at: Option<Instant>,
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
    workers: Vec<WorkerProc>,
    lanes: Vec<Lane>,
    rr: RoundRobin,
    /// Accepted connections no worker could take yet (all gone): kept, not dropped.
    held: Vec<RawFd>,
    scratch: Vec<RawFd>,
    accepting: bool,
    stop_deadline: Option<Instant>,
    stragglers_killed: bool,
    tick: Box<Timespec>,
    completions: Vec<(u64, i32, u32)>,
}

impl Master {
    fn start(config: MasterConfig) -> Result<Master, String> {
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(format!("--workers must be between 1 and {MAX_WORKERS}"));
        }
        // Workers inherit the raised limit; failing to raise it is not fatal.
        if let Err(e) = crate::rlimit::raise_fd_limit() {
            eprintln!("ringmaster: cannot raise the open-file limit: {e}");
        }
        let cpus = if config.pin { choose_cpus(config.cpus.as_deref(), &allowed_cpus())? } else { Vec::new() };
        let (listener, local) =
            listen(config.bind, config.backlog).map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
        let signals = signal_fd(&SIGNALS).map_err(|e| format!("cannot set up signals: {e}"))?;
        let (stats, stats_fd) =
            StatsBlock::create_shared(MAX_WORKERS).map_err(|e| format!("cannot create the stats block: {e}"))?;
        let ring = IoUring::builder()
            .setup_cqsize(8192)
            .build(1024)
            .map_err(|e| format!("cannot create an io_uring (is io_uring enabled?): {e}"))?;
        let workers = (1..=config.workers)
            .map(|id| WorkerProc {
                id,
                cpu: if config.pin { Some(cpu_for_worker(&cpus, id)) } else { None },
                pid: None,
                last_pid: None,
                started: Instant::now(),
                restarts: 0,
                backoff: FIRST_BACKOFF,
                restart_at: None,
            })
            .collect();
        let mut master = Master {
            ring,
            lanes: (0..config.workers).map(|_| Lane::new()).collect(),
            config,
            listener,
            signals,
            stats,
            stats_fd,
            workers,
            rr: RoundRobin::default(),
            held: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
            accepting: false,
            stop_deadline: None,
            stragglers_killed: false,
            tick: Box::new(Timespec::from(TICK)),
            completions: Vec::with_capacity(8192),
        };
        for index in 0..master.workers.len() {
            master.spawn(index).map_err(|e| format!("cannot start worker {}: {e}", index + 1))?;
        }
        log_listening(local, &master.config);
        Ok(master)
    }

    fn serve(&mut self) -> io::Result<()> {
        let poll = opcode::PollAdd::new(Fd(self.signals.as_raw_fd()), libc::POLLIN as u32).multi(true).build();
        self.push(poll.user_data(token(Op::Signal, 0, 0)))?;
        self.arm_accept()?;
        self.arm_tick()?;
        loop {
            if self.stop_deadline.is_some() && self.workers.iter().all(|w| w.pid.is_none()) {
                return Ok(());
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => return Err(e),
            }
            self.completions.clear();
            for cqe in self.ring.completion() {
                self.completions.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            for i in 0..self.completions.len() {
                let (user_data, result, flags) = self.completions[i];
                self.complete(user_data, result, flags)?;
            }
            self.pump_lanes()?;
        }
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the pointers an entry carries (lane messages, the tick) live in
            // `self` (boxed, never moved) until their completion arrives or the ring drops.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) -> io::Result<()> {
        let (op, index, epoch) = untoken(user_data);
        match op {
            Some(Op::Signal) => {
                self.on_signals()?;
                if !cqueue::more(flags) {
                    let poll =
                        opcode::PollAdd::new(Fd(self.signals.as_raw_fd()), libc::POLLIN as u32).multi(true).build();
                    self.push(poll.user_data(token(Op::Signal, 0, 0)))?;
                }
                Ok(())
            }
            Some(Op::Accept) => self.on_accept(result, cqueue::more(flags)),
            Some(Op::LaneSend) => self.on_lane_sent(index, epoch, result),
            Some(Op::Tick) => self.on_tick(),
            Some(Op::Ignore) | None => Ok(()),
        }
    }

    // --- workers ------------------------------------------------------------------------

    fn spawn(&mut self, index: usize) -> io::Result<()> {
        let (master_end, worker_end) = channel_pair()?;
        let worker = &mut self.workers[index];
        if let Some(counters) = self.stats.slot(index) {
            counters.live.store(0, std::sync::atomic::Ordering::Relaxed);
            counters.set_state(STATE_STARTING);
        }
        let launch = WorkerLaunch {
            id: worker.id,
            cpu: worker.cpu,
            stats_slots: self.stats.len(),
            channel: worker_end.as_fd(),
            stats: self.stats_fd.as_fd(),
            listener: (self.config.mode == Mode::Shared).then(|| self.listener.as_fd()),
        };
        let pid = spawn_worker(&launch)?;
        drop(worker_end);
        worker.pid = Some(pid);
        worker.last_pid = Some(pid);
        worker.started = Instant::now();
        worker.restart_at = None;
        let cpu = worker.cpu.map_or_else(|| "none".to_string(), |c| c.to_string());
        if worker.restarts == 0 {
            eprintln!("ringmaster: worker {} started (pid {pid}, cpu {cpu})", worker.id);
        } else {
            eprintln!("ringmaster: worker {} restarted (pid {pid}, cpu {cpu}, restart {})", worker.id, worker.restarts);
        }
        self.lanes[index].open(master_end);
        self.route_held();
        Ok(())
    }

    /// Reaps every exited child: log it, give back what its lane held, plan its restart.
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
            let Some(index) = self.workers.iter().position(|w| w.pid == Some(pid.as_raw() as u32)) else { continue };
            let worker = &mut self.workers[index];
            worker.pid = None;
            eprintln!("ringmaster: worker {} (pid {pid}) {how}", worker.id);
            if let Some(counters) = self.stats.slot(index) {
                counters.live.store(0, std::sync::atomic::Ordering::Relaxed);
                counters.set_state(STATE_STOPPED);
            }
            self.lanes[index].close(&mut self.scratch);
            self.reroute_scratch()?;
            if self.stop_deadline.is_none() {
                self.plan_restart(index);
            }
        }
    }

    fn plan_restart(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.started.elapsed() >= HEALTHY_UPTIME {
            worker.backoff = FIRST_BACKOFF;
        }
        let delay = worker.backoff;
        worker.backoff = (worker.backoff.mul_f64(1.5)).min(MAX_BACKOFF);
        worker.restart_at = Some(Instant::now() + delay);
        eprintln!("ringmaster: worker {} restarting in {} ms", worker.id, delay.as_millis());
    }

    fn restart_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            if self.workers[index].restart_at.is_some_and(|at| at <= now) {
                self.workers[index].restarts += 1;
                if let Err(e) = self.spawn(index) {
                    eprintln!("ringmaster: cannot restart worker {}: {e}", index + 1);
                    self.plan_restart(index);
                }
            }
        }
    }

    // --- connections (rr mode) ------------------------------------------------------------

    fn arm_accept(&mut self) -> io::Result<()> {
        if self.config.mode != Mode::RoundRobin || self.accepting || self.stop_deadline.is_some() {
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
        if result >= 0 {
            self.route(result);
        }
        // Out of fds or memory: the tick re-arms rather than spinning now.
        let starved = matches!(-result, libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS);
        if !self.accepting && !starved {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Gives an accepted connection to the next worker in turn, or holds it.
    fn route(&mut self, fd: RawFd) {
        match self.rr.pick(&self.lanes) {
            Some(index) => self.lanes[index].enqueue(fd),
            None if self.stop_deadline.is_some() => close_fd(fd),
            None => self.held.push(fd),
        }
    }

    fn route_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for &fd in &held {
            self.route(fd);
        }
        self.held = held;
        self.held.clear();
    }

    fn reroute_scratch(&mut self) -> io::Result<()> {
        let undelivered = std::mem::take(&mut self.scratch);
        for &fd in &undelivered {
            self.route(fd);
        }
        self.scratch = undelivered;
        self.scratch.clear();
        Ok(())
    }

    /// Sends what every lane has queued (one message in flight per lane).
    fn pump_lanes(&mut self) -> io::Result<()> {
        for index in 0..self.lanes.len() {
            let epoch = self.lanes[index].epoch;
            if let Some((channel, header)) = self.lanes[index].next_send() {
                let send = opcode::SendMsg::new(Fd(channel), header).flags(libc::MSG_NOSIGNAL as u32).build();
                self.push(send.user_data(token(Op::LaneSend, index, epoch)))?;
            }
        }
        Ok(())
    }

    fn on_lane_sent(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let Some(lane) = self.lanes.get_mut(index) else { return Ok(()) };
        debug_assert_eq!(lane.epoch & 0xff, epoch & 0xff);
        match lane.on_sent(result >= 0, &mut self.scratch) {
            Sent::Delivered => {
                // The worker has its copies now; close ours through the ring.
                for i in 0..self.scratch.len() {
                    let close = opcode::Close::new(Fd(self.scratch[i])).build();
                    self.push(close.user_data(token(Op::Ignore, 0, 0)))?;
                }
                self.scratch.clear();
                Ok(())
            }
            Sent::Failed => self.reroute_scratch(),
        }
    }

    // --- signals, time, stopping -----------------------------------------------------------

    fn on_signals(&mut self) -> io::Result<()> {
        while let Some(signo) = next_signal(&self.signals)? {
            match Signal::try_from(signo) {
                Ok(Signal::SIGCHLD) => self.reap()?,
                Ok(Signal::SIGUSR1) => self.print_stats(),
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => self.begin_stop(signo)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn begin_stop(&mut self, signo: i32) -> io::Result<()> {
        if self.stop_deadline.is_some() {
            if signo == libc::SIGINT {
                eprintln!("ringmaster: second SIGINT: killing workers now");
                self.kill_all(Signal::SIGKILL);
            }
            return Ok(());
        }
        let running = self.workers.iter().filter(|w| w.pid.is_some()).count();
        eprintln!("ringmaster: {} received: stopping {running} workers", signal_name(signo));
        self.stop_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        if self.accepting {
            let cancel = opcode::AsyncCancel::new(token(Op::Accept, 0, 0)).build();
            self.push(cancel.user_data(token(Op::Ignore, 0, 0)))?;
        }
        for worker in &mut self.workers {
            worker.restart_at = None;
        }
        for lane in &mut self.lanes {
            lane.request_drain();
        }
        for fd in self.held.drain(..) {
            close_fd(fd);
        }
        Ok(())
    }

    fn kill_all(&mut self, signal: Signal) {
        for worker in &self.workers {
            if let Some(pid) = worker.pid {
                let _ = kill(Pid::from_raw(pid as i32), signal);
            }
        }
    }

    fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token(Op::Tick, 0, 0)))
    }

    fn on_tick(&mut self) -> io::Result<()> {
        match self.stop_deadline {
            Some(deadline) if Instant::now() >= deadline && !self.stragglers_killed => {
                eprintln!("ringmaster: shutdown timeout: killing the workers still running");
                self.kill_all(Signal::SIGKILL);
                self.stragglers_killed = true;
            }
            Some(_) => {}
            None => {
                self.restart_due();
                self.arm_accept()?;
            }
        }
        self.arm_tick()
    }

    fn print_stats(&self) {
        let rows: Vec<WorkerRow> = self
            .workers
            .iter()
            .enumerate()
            .map(|(index, w)| WorkerRow {
                id: w.id,
                pid: w.last_pid,
                running: w.pid.is_some(),
                cpu: w.cpu,
                counts: self.stats.slot(index).map(|c| c.snapshot()).unwrap_or_default(),
                restarts: w.restarts,
                uptime_ms: if w.pid.is_some() { w.started.elapsed().as_millis() as u64 } else { 0 },
            })
            .collect();
        let line = stats_json(self.config.mode.name(), &rows);
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
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

fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is an accepted connection the master owns and no longer uses.
    unsafe { libc::close(fd) };
}

fn log_listening(local: SocketAddr, config: &MasterConfig) {
    eprintln!(
        "ringmaster: listening on {local} (mode {}, {} worker{})",
        config.mode.name(),
        config.workers,
        if config.workers == 1 { "" } else { "s" }
    );
}
