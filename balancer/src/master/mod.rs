//! The master: owns the listener, starts one worker per CPU, balances
//! connections over them or lets them accept, and supervises them. This file
//! holds the master's state and the loop that ties events to their handlers;
//! each concern is one file (or folder) beside it:
//!
//! - `start.rs`: the master's start (sockets, backend, stats block, the
//!   first workers);
//! - `ops.rs`: the signals handled and the kinds of op the loop dispatches;
//! - `tick.rs`: what is checked every tick; `timer.rs`: when the one timer
//!   fires (the tick, a steering look, a planned restart, a stop's round);
//! - `supervise/`: worker processes — spawn (`mod.rs`), readiness
//!   (`readiness.rs`), the watchdogs (`watchdog.rs`);
//! - `reap.rs`: a process's end — reap, exit logs, counts kept, restart backoff;
//! - `cannot_start.rs`: a worker that cannot start under these limits
//!   before any was ready: the master exits 1;
//! - `reload.rs`: rolling reload;
//! - `scale.rs`: scaling at run time, and retiring a process (a scale-down's
//!   or a reload's): lame duck, drain, killed if it overruns;
//! - `dispatch/`: accepted connections — the accept (`accept.rs`), the
//!   mode's pick (`route.rs`), holding, re-routing (`reroute.rs`),
//!   refusing with `503`;
//! - `judge.rs`: the routing facts each worker is judged by;
//! - `fd_limit_log.rs`: rate-limited lines about running out of descriptors;
//! - `lanes.rs`: the lanes that carry them to workers — batches out, acks in,
//!   a dead worker's lane settled, a lagging worker logged;
//! - `last_hand_off.rs`: at a stop, what waits in the listen queue and what
//!   is held goes to workers before their `Drain`;
//! - `commands/`: what operators ask for, by signal or on the control
//!   socket (`mod.rs`), the graceful stop (`stop.rs`), the control
//!   socket's I/O (`control_socket.rs`);
//! - `stopping.rs`: a graceful stop under way, and when the master is done;
//! - `control_path.rs`: the control socket's path made again when it was
//!   removed under the master;
//! - `stop_listening.rs`: a stop's end of listening, once the drains have
//!   begun: new clients refused, and in `reuseport` a stuck worker's
//!   listener answered and shut;
//! - `answer_at_stop.rs`: before that shut, the `503`s to what waits in the
//!   listen queue while the handshakes begun there end: a state of the stop
//!   the timer drives, a round every 5 ms, the loop turning between them;
//! - `in_flight.rs`: the waits for the packets in flight a stop and a
//!   set-aside listener's let-go make, off the loop, and what goes on once
//!   one is over;
//! - `sockets.rs`: where the listening sockets come from at start (handed
//!   down, passed by systemd, or bound here; `reuseport`'s anchor);
//! - `upgrade/`: binary upgrade: handing the sockets to a new master
//!   (`mod.rs`), its word and the hand-over (`hand_over.rs`), a failed
//!   upgrade (`give_up.rs`);
//! - `take_over.rs`: taking them over from an old one, as the new master;
//! - `set_aside.rs`: a scaled-away worker's `reuseport` listener, let go
//!   of once no process of it accepts there;
//! - `steer.rs`: the facts a mode that steers the kernel's choice of
//!   listener (`reuseport --steer load`) refreshes its program with;
//! - `spares.rs`: the fd reserve kept, and spares lent at the open-file limit;
//! - `messages.rs`: lines of text between the master and its workers (`send`);
//! - `stats.rs`: the stats line, request rates;
//! - `metrics.rs`: the Prometheus endpoint's I/O (`--metrics`);
//! - `notify.rs`: what systemd is told (readiness, reload, stop, status).
//!
//! Everything runs on one thread and one [`Reactor`] (io_uring or epoll):
//! signals arrive through a signalfd, accepts through a multishot accept,
//! hand-offs go out as `sendmsg` ops, acks come back through the workers'
//! shared slots (a multishot receive per lane takes the wake-ups the master
//! asks for when it waits on one), and the control socket is served
//! alongside; the master never blocks on a single worker.
//!
//! A *worker* is an id (1, 2, ...) with a CPU; a *process slot* is a stats
//! block slot plus a lane (channel). Each process of a worker gets its own
//! slot, so during a rolling restart the old and the new process of one
//! worker run side by side without sharing counters.

mod answer_at_stop;
mod cannot_start;
mod commands;
mod control_path;
mod dispatch;
mod fd_limit_log;
mod in_flight;
mod judge;
mod lanes;
mod last_hand_off;
mod messages;
mod metrics;
mod notify;
mod ops;
mod reap;
mod reload;
mod scale;
mod set_aside;
mod sockets;
mod spares;
mod start;
mod stats;
mod steer;
mod stop_listening;
mod stopping;
mod supervise;
mod take_over;
mod tick;
mod timer;
mod upgrade;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ringmaster_engine::stats::CountersSnapshot;
use ringmaster_engine::{Backend, StatsBlock};

use crate::config::MasterConfig;
use crate::error::{Context, Error, Result};
use crate::fd_reserve::FdReserve;
use crate::metrics::MasterCounts;
use crate::reactor::{Completion, Reactor};
use crate::spawn::OwnImage;
use crate::systemd::Notifier;
use commands::ControlState;
use dispatch::Dispatch;
use metrics::MetricsState;
use notify::Notified;
use ops::Op;
use reload::Reload;
use stopping::Stopping;
use supervise::{Slot, Worker};
use upgrade::Upgrades;

/// Most worker processes at once (slots in the stats block), old and new together.
pub const MAX_SLOTS: usize = 1024;
/// Most workers (`--workers`, `scale N`): half the slots, so that a reload
/// has a slot for every worker's new process beside the old one.
pub const MAX_WORKERS: usize = MAX_SLOTS / 2;
/// How often the master checks deadlines, restarts and heartbeats.
const TICK: Duration = Duration::from_millis(100);

/// Runs the master until it is stopped.
pub fn run_master(config: MasterConfig) -> Result<()> {
    // Every connection of `rr` and `least` passes through this process:
    // a stdout or stderr nobody drains must not hold it (`log::sink`).
    crate::log::sink::never_block();
    let mut master = Master::start(config)?;
    let served = master.serve().context("the master's event loop failed");
    if served.is_ok() {
        master.print_stats();
        master.log_handed_over();
    }
    // What still waits for room in systemd's socket (the `STOPPING=1`, the
    // last `STATUS=`): the loop that would have sent it at a tick is over.
    master.finish_notifying();
    crate::log::sink::finish(EXIT_FLUSH);
    served?;
    match master.cannot_start.take() {
        Some(why) => Err(Error::Config(why)),
        None => Ok(()),
    }
}

/// At exit, how long the lines still waiting for stdout or stderr get.
const EXIT_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Master {
    // Dropped first: the kernel stops using the buffers the lanes and clients lend it.
    reactor: Box<dyn Reactor>,
    backend: Backend,
    config: MasterConfig,
    image: OwnImage,
    /// The file `upgrade` runs: the path this master was started from.
    upgrade_path: Option<PathBuf>,
    listener: OwnedFd,
    signals: OwnedFd,
    stats: StatsBlock,
    stats_fd: OwnedFd,
    /// Spare descriptors (copies of `stats_fd`) for starting processes at
    /// the open-file limit.
    fd_reserve: FdReserve,
    cpus: Vec<usize>,
    slots: Vec<Slot>,
    workers: Vec<Worker>,
    dispatch: Dispatch,
    reload: Reload,
    control: Option<ControlState>,
    metrics: Option<MetricsState>,
    upgrades: Upgrades,
    /// The drain delay under way (`--drain-delay`): when it ends. Every
    /// worker is a lame duck meanwhile; the stop proper comes after.
    lame_duck: Option<Instant>,
    stopping: Option<Stopping>,
    /// Some worker process of this master has been ready (see `cannot_start`).
    ever_ready: bool,
    /// No worker can start with these limits: why, for the master's exit.
    cannot_start: Option<String>,
    /// What the master counts itself (the metrics).
    counts: MasterCounts,
    /// What the processes of workers removed by a scale-down counted: kept
    /// so that totals never go backwards.
    retired_counts: CountersSnapshot,
    started_at: SystemTime,
    /// The listeners came from systemd (socket activation).
    activated: bool,
    /// systemd's notification socket, and what it was told.
    notifier: Option<Notifier>,
    notified: Notified,
    /// The bound address and the latest time to log it, until it is logged.
    listening: Option<(SocketAddr, Instant)>,
    completions: Vec<Completion>,
    /// When the tick's work is next due; the timer may fire sooner, for a
    /// planned restart or a mode that steers (`timer.rs`).
    next_tick: Instant,
    /// When a mode that steers next looks at the workers
    /// ([`Balance::steer_every`](crate::modes::Balance::steer_every)).
    next_steer: Instant,
    /// A restart was planned after the timer was armed: it may fire too late.
    timer_outdated: bool,
    /// When the master's last turn began ([`Master::forgive_stand_still`]):
    /// the watchdog and the routing facts count only the time it watched.
    heartbeats_watched: Instant,
    /// Reused for the facts handed to a mode that steers.
    steer_facts: Vec<crate::modes::SlotFacts>,
    /// Reused for the connections such a mode takes from a stalled or full worker's queue.
    steer_taken: Vec<OwnedFd>,
    /// The waits for the packets in flight, made in threads of their own.
    in_flight: crate::in_flight::PacketsInFlight,
    /// The set-aside listeners whose let-go waits for one.
    letting_go: Vec<set_aside::LettingGo>,
    /// Reused for the pids [`Master::reap`] looks at on each `SIGCHLD`
    /// (reserved at start for every slot and an upgrade's new master).
    reaped: Vec<u32>,
}

impl Master {
    fn serve(&mut self) -> io::Result<()> {
        self.reactor.poll_readable(self.signals.as_raw_fd(), Op::Signal.token(0, 0))?;
        self.arm_accept()?;
        self.arm_control_accept()?;
        self.arm_metrics_accept()?;
        self.arm_timer()?;
        while !self.done() {
            // A round of a stop's answering planned since the timer was armed
            // (`done` may begin one): the timer is armed for it first.
            self.rearm_timer_if_outdated()?;
            self.reactor.wait(&mut self.completions)?;
            self.forgive_stand_still();
            let mut batch = std::mem::take(&mut self.completions);
            // The lanes first, in order (a batch is sent before it is
            // acknowledged): what the workers said before this turn is known
            // before any connection is routed or any worker judged slow.
            for c in &batch {
                match Op::of(c.token) {
                    Some((Op::LaneSend, index, _)) => self.on_lane_sent(index, c.result)?,
                    Some((Op::LaneRecv, index, _)) => {
                        self.on_lane_received(index, c.result, c.more, c.message.as_slice())?
                    }
                    _ => {}
                }
            }
            // Then what the workers acknowledged in their shared slots.
            self.settle_acks()?;
            // Signals last: a connection accepted in the turn a stop is seen
            // came before the stop, and goes to a worker, not to its 503.
            let mut signalled = None;
            for completion in batch.drain(..) {
                if matches!(Op::of(completion.token), Some((Op::Signal, ..))) {
                    // Each reads every pending signal; the poll re-arms if one ended it.
                    signalled = Some(signalled.unwrap_or(true) && completion.more);
                    continue;
                }
                self.complete(completion)?;
            }
            if let Some(more) = signalled {
                self.on_signal_ready(more)?;
            }
            self.completions = batch;
            self.notice_ready()?;
            self.notify_ready();
            self.step_upgrade()?;
            self.pump_lanes()?;
            // No sleep on an ack that came: each lane that waits for one is
            // asked to wake the master, and what came meanwhile is settled.
            // A lane settles at most one batch here (the next joins its
            // batches only once its send completes, in a later turn), and a
            // lane asked and not yet answered keeps its request: stopping
            // after a few rounds loses no wake-up.
            for _ in 0..4 {
                if !self.ask_for_wakes()? {
                    break;
                }
                self.pump_lanes()?;
            }
            // What a start or a close gave back since: before the next accepts.
            self.keep_fd_reserve()?;
            self.accept_again_after_closes()?;
        }
        Ok(())
    }

    /// The signalfd is readable: act on every pending signal, and poll it
    /// again if that poll ended (`more` false).
    fn on_signal_ready(&mut self, more: bool) -> io::Result<()> {
        self.on_signals()?;
        if !more {
            self.reactor.poll_readable(self.signals.as_raw_fd(), Op::Signal.token(0, 0))?;
        }
        Ok(())
    }

    fn complete(&mut self, completion: Completion) -> io::Result<()> {
        let Completion { token, result, more, accepted, .. } = completion;
        let Some((op, index, epoch)) = Op::of(token) else { return Ok(()) };
        match op {
            Op::Signal => self.on_signal_ready(more),
            Op::Accept => self.on_accept(result, more, accepted),
            // Handled first, in `serve`.
            Op::LaneSend | Op::LaneRecv => Ok(()),
            Op::Tick => self.on_tick(),
            Op::ControlAccept => self.on_control_accept(result, more, accepted),
            Op::ControlRecv => self.on_control_recv(index, epoch, result),
            Op::ControlSend => self.on_control_sent(index, epoch, result),
            Op::UpgradeChannel => self.on_upgrade_channel(epoch, more),
            Op::MetricsAccept => self.on_metrics_accept(result, more, accepted),
            Op::MetricsRecv => self.on_metrics_recv(index, epoch, result),
            Op::MetricsSend => self.on_metrics_sent(index, epoch, result),
        }
    }
}
