//! The master: owns the listener, starts one worker per CPU, balances
//! connections over them or lets them accept, and supervises them. This file
//! holds the master's state and the loop that ties events to their handlers;
//! each concern is one file beside it:
//!
//! - `start.rs`: the master's start (sockets, backend, stats block, the
//!   first workers);
//! - `ops.rs`: the signals handled and the kinds of op the loop dispatches;
//! - `supervise/`: worker processes — spawn (`mod.rs`), readiness
//!   (`readiness.rs`), the watchdogs (`watchdog.rs`);
//! - `reap.rs`: a process's end — reap, exit logs, counts kept, restart backoff;
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
//! - `control_path.rs`: the control socket's path made again when it was
//!   removed under the master;
//! - `stop_listening.rs`: a stop's end of listening, once the drains have
//!   begun: new clients refused, and in `reuseport` a stuck worker's
//!   listener answered and shut;
//! - `answer_at_stop.rs`: before that shut, the `503`s to what waits in the
//!   listen queue while the handshakes begun there end: a state of the stop
//!   the timer drives, a round every 5 ms, the loop turning between them;
//! - `sockets.rs`: where the listening sockets come from at start (handed
//!   down, passed by systemd, or bound here; `reuseport`'s anchor);
//! - `upgrade/`: binary upgrade: handing the sockets to a new master
//!   (`mod.rs`), its word and the hand-over (`hand_over.rs`), a failed
//!   upgrade (`give_up.rs`);
//! - `take_over.rs`: taking them over from an old one, as the new master;
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
mod supervise;
mod take_over;
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

/// A graceful stop under way.
#[derive(Debug)]
struct Stopping {
    /// When the workers were told to drain (after any drain delay).
    began: Instant,
    /// Workers still running then are killed.
    deadline: Instant,
    stragglers_killed: bool,
    /// Once every worker is gone: how long a control client may still read its last reply.
    exit_grace: Option<Instant>,
    /// The listeners are to stop listening once every worker has begun its
    /// drain (`Master::stop_listening_when_drained`).
    stop_listening: bool,
    /// They have: what is left of them (`reuseport`: listeners kept for a
    /// worker that stands still) is looked at every tick.
    stopped_listening: bool,
    /// `reuseport`: workers whose listener the master keeps for one look
    /// after their drain began, closed to newcomers, to answer what queued
    /// after the worker took its queue (`stop_listening.rs`).
    taken_by_worker: Vec<usize>,
    /// The queues answered while the handshakes on their port end, before
    /// their listeners are shut (`answer_at_stop.rs`); one look at a time.
    answering: Option<answer_at_stop::Answering>,
    /// Asked for (a signal, `stop`), not only the drain of a master that
    /// handed over: a `SIGINT` now is a second one, which kills the workers.
    asked: bool,
}

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

    /// Stopping, every worker is gone, every lane has given back what it
    /// held (a dead worker's lane once its receive's cancel completes: what
    /// it never acknowledged is refused then, not dropped with the master's
    /// exit) and a new master that failed is gone too: done, its listeners
    /// no longer listening, once control clients have read their last
    /// replies and refused connections have lingered (at most a second more).
    fn done(&mut self) -> bool {
        if self.stopping.is_none() {
            return false;
        }
        let holding = |s: &supervise::Slot| s.process.is_some() || s.lane.held_fds() > 0;
        if self.slots.iter().any(holding) || self.upgrades.waits_for_child() {
            return false;
        }
        // Not left to the tick: with the workers gone before it, the exit
        // reset every client that connected since the stop and waited in a
        // queue (seen: each of 8 clients looping across a stop, in 11 stops
        // of 12 over the four modes; all 20 queued at the fd limit).
        self.stop_listening_when_drained();
        // Its listeners are shut once the handshakes under way there end.
        if self.answering() {
            return false;
        }
        let replying = self.control.as_ref().is_some_and(|c| c.clients.has_pending_output());
        // The queue's `503`s just sent linger (200 ms, closed on the tick):
        // exiting at once closed them, and a request still on its way got
        // a reset (seen: a client writing after its 503 got EPIPE, 2 of 5).
        let lingering = self.dispatch.refusals_linger();
        let Some(stopping) = self.stopping.as_mut() else { return false };
        let grace = *stopping.exit_grace.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
        !(replying || lingering) || Instant::now() >= grace
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

    /// What is checked every [`TICK`]: deadlines, restarts, heartbeats, lag, fd limits.
    fn tick(&mut self) -> io::Result<()> {
        // What the workers did since the last turn first: the tick can come
        // in the same turn as their news, ahead of it, and after a master
        // that stood still (`SIGSTOP`, a paused machine) past a deadline, a
        // process that got ready meanwhile was killed as never ready (its
        // reload cancelled, a scale-up's worker restarted), and one that
        // exited was said to overrun its drain.
        self.reap()?;
        self.notice_ready()?;
        match self.stopping.as_mut() {
            Some(stopping) if Instant::now() >= stopping.deadline && !stopping.stragglers_killed => {
                crate::log!(warn: "shutdown timeout: killing the workers still running");
                stopping.stragglers_killed = true;
                // Each exit line says why, as a retiree's does (the README
                // promises it): a bare `killed by signal 9` reads as someone else's kill.
                for process in self.slots.iter_mut().filter_map(|s| s.process.as_mut()) {
                    process.kill("after overrunning its drain");
                }
            }
            Some(_) => self.stop_listening_when_drained(),
            None => {
                self.restart_due();
                self.arm_accept()?;
                self.arm_control_accept()?;
            }
        }
        self.close_refused();
        self.end_drain_delay_when_due()?;
        self.arm_metrics_accept()?;
        self.watch_upgrade()?;
        self.watch_old_master_channel()?;
        self.expire_control_clients()?;
        self.bind_control_path_if_gone()?;
        self.expire_scrapes()?;
        self.kill_overdue_retirees();
        self.expire_reload_start();
        self.kill_unready_starts();
        self.watch_heartbeats();
        self.let_go_set_aside_listeners();
        self.close_lanes_of_self_drained();
        self.watch_lagging();
        self.watch_fd_limits();
        self.sample_rates();
        self.notify_tick();
        // Lines a full stdout or stderr did not take go out as it takes them.
        crate::log::sink::flush();
        Ok(())
    }
}
