//! Binary upgrade, the master's steps (the mechanism is `crate::upgrade`).
//!
//! As the old master: start the new master from the file at the path this
//! one was started from, handing it every listening socket and the control
//! socket; wait (at most `--shutdown-timeout`) for its word that all its
//! workers are ready; then stop accepting and, once the accept has ended,
//! drain every worker and exit 0. If it cannot be started, exits first,
//! closes the channel or is late, the old master says why, stops it
//! (`SIGTERM`, then `SIGKILL` after `--shutdown-timeout`) and keeps serving.
//! The new master is a child of the old one until the old one exits, but
//! never one of its workers: nothing meant for workers (signals, restarts,
//! stats) reaches it.
//!
//! As the new master: accept nothing, on the listeners or the control
//! socket, until every worker is ready (so that a failed upgrade takes no
//! connection with it); then tell the old master, and serve.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::take_over::started_at;
use super::{Master, Op};
use crate::control::ClientId;
use crate::listener::ListenerKey;
use crate::log::counted;
use crate::upgrade::env::FdRole;
use crate::upgrade::inherit::Takeover;
use crate::upgrade::launch::{start_new_master, Heard, Launch, ReadyChannel};

/// How long a new master that closed its readiness channel without a word
/// has to exit (so that the failure names its exit code) before it is
/// stopped anyway.
const CLOSED_GRACE: Duration = Duration::from_secs(1);

/// This master's part in upgrades.
#[derive(Debug, Default)]
pub(super) struct Upgrades {
    /// An old master started this one, and has not yet been told it is ready.
    pub(super) takeover: Option<Takeover>,
    /// The new master this one started, while it matters.
    successor: Option<Successor>,
    /// Upgrades begun: the epoch of the readiness channel's op, so that a
    /// completion of an earlier attempt names nothing.
    attempts: u32,
    /// As a new master: the old one gave this one up as it became ready,
    /// and serves on, on the listeners they share.
    pub(super) given_up_by: Option<u32>,
    /// As a new master that told its old master it is ready: that master's
    /// pid, and when it started (so that a later process given the same pid
    /// is not taken for it).
    pub(super) took_over_from: Option<(u32, Option<u64>)>,
    /// As a new master every worker of which is ready: its word to the old
    /// master waits for systemd's socket (`MAINPID=` first), said once.
    pub(super) held_for_systemd: bool,
    /// As a new master that told its old master it is ready: the channel,
    /// until what the old master did with the word is known.
    pub(super) told: Option<Takeover>,
}

impl Upgrades {
    /// A master an old master started (`takeover`), or one that was not.
    pub(super) fn taking_over(takeover: Option<Takeover>) -> Upgrades {
        Upgrades { takeover, ..Upgrades::default() }
    }

    /// This master may accept connections (listeners, control socket): it is
    /// neither waiting to take over, nor given up by its old master, nor
    /// handing over.
    pub(super) fn lets_accept(&self) -> bool {
        self.takeover.is_none()
            && self.given_up_by.is_none()
            && !self.successor.as_ref().is_some_and(|s| matches!(s.phase, Phase::HandingOver | Phase::HandedOver))
    }

    /// No upgrade is under way, as the old master or as the new one: the
    /// control socket's path is this master's alone to bind again.
    pub(super) fn is_quiet(&self) -> bool {
        self.takeover.is_none() && self.successor.is_none() && self.given_up_by.is_none() && self.told.is_none()
    }

    /// An old master started this one, and waits for its word.
    pub(super) fn is_taking_over(&self) -> bool {
        self.takeover.is_some()
    }

    /// A new master this one started is still to be stopped and reaped.
    pub(super) fn waits_for_child(&self) -> bool {
        self.successor.as_ref().is_some_and(|s| matches!(s.phase, Phase::Starting { .. } | Phase::Abandoned { .. }))
    }

    /// The new master this one started, while it is not reaped: after it
    /// is, its pid may name another process.
    pub(super) fn child(&self) -> Option<u32> {
        self.successor.as_ref().filter(|s| !s.reaped).map(|s| s.pid)
    }

    /// As a new master that said it is ready: the old master's pid, if a
    /// stop signal from `sender` is that master's. It signals this one only
    /// when it gives the upgrade up (`upgrade_failed`), having not read the
    /// word: a stop there as the word was on its way.
    pub(super) fn given_up_by_signal(&self, sender: u32) -> Option<u32> {
        let (old, started) = self.took_over_from?;
        (old == sender && self.given_up_by.is_none() && started_at(old) == started).then_some(old)
    }

    /// The new master this one started and waits for, if it does: a reload
    /// or a scale now would be drained at the hand-over, its `ok` a lie.
    pub(super) fn starting(&self) -> Option<u32> {
        let successor = self.successor.as_ref()?;
        matches!(successor.phase, Phase::Starting { .. }).then_some(successor.pid)
    }

    /// The new master this one handed over to.
    pub(super) fn handed_over_to(&self) -> Option<u32> {
        let successor = self.successor.as_ref()?;
        matches!(successor.phase, Phase::HandingOver | Phase::HandedOver).then_some(successor.serving())
    }
}

/// A new master this one started.
#[derive(Debug)]
struct Successor {
    /// The process this master started (and reaps).
    pid: u32,
    /// The process that said it is ready, where it is not `pid`: a wrapper
    /// started it without `exec`.
    speaker: Option<u32>,
    phase: Phase,
    /// The control client waiting for the outcome.
    requester: Option<ClientId>,
    /// `pid` exited and was reaped (kept while this master drains after
    /// handing over to it).
    reaped: bool,
}

impl Successor {
    /// The new master's own pid, as far as this master knows it.
    fn serving(&self) -> u32 {
        self.speaker.unwrap_or(self.pid)
    }
}

#[derive(Debug)]
enum Phase {
    /// Started: waiting for its word on `channel` until `deadline`. Without
    /// a channel it closed it, saying nothing: most likely it is exiting, and
    /// its exit says more than the close (see [`CLOSED_GRACE`]).
    Starting { channel: Option<ReadyChannel>, deadline: Instant },
    /// It is ready: this master's accept is being cancelled; it drains next.
    HandingOver,
    /// This master drains and exits; the new one serves.
    HandedOver,
    /// It failed and was told to stop; killed at `kill_at` if still running.
    Abandoned { kill_at: Instant, killed: bool },
}

impl Master {
    /// Every listening socket this master holds, under the key a new master
    /// takes each over by: all of them go to the new master. The mode's own
    /// listeners (`reuseport`: one per worker slot) go as `ListenerKey::Slot`
    /// with the worker's id, and `Master::start` gives each to the same slot.
    pub(super) fn listening_sockets(&self) -> Vec<(ListenerKey, BorrowedFd<'_>)> {
        use std::os::fd::AsFd;
        let mut sockets = vec![(ListenerKey::Main, self.listener.as_fd())];
        let slots = self.dispatch.balance.own_listeners();
        sockets.extend(slots.into_iter().map(|(worker, fd)| (ListenerKey::Slot(worker), fd)));
        if let Some(metrics) = &self.metrics {
            sockets.push((ListenerKey::Metrics, metrics.listener.as_fd()));
        }
        sockets
    }

    /// As a new master: lets go of the slot listeners handed down for
    /// workers this master does not run (the old one had scaled up): the
    /// old workers still holding them empty their queues as they drain.
    pub(super) fn let_go_of_unused_slot_listeners(&mut self) {
        let unused: Vec<usize> = (self.dispatch.balance.own_listeners().iter())
            .map(|&(worker, _)| worker)
            .filter(|&worker| self.worker_index(worker).is_none())
            .collect();
        for worker in unused {
            crate::log!("upgrade: closing the listener handed down for worker {worker}: this master does not run it");
            self.dispatch.balance.retire_worker(worker);
        }
    }

    /// Starts an upgrade (`why`: the signal or command). The reply for the
    /// control client that asked, now (a refusal, a failure to start), or
    /// `None`: it comes with the outcome.
    pub(super) fn begin_upgrade(&mut self, why: &str, requester: Option<ClientId>) -> io::Result<Option<String>> {
        if let Some(refusal) = self.upgrade_refusal() {
            crate::log!("upgrade ({why}) refused: {refusal}");
            return Ok(Some(format!("error: {refusal}")));
        }
        let Some(program) = self.upgrade_path.clone() else {
            let refusal = "the path this master was started from is unknown";
            crate::log!("upgrade ({why}) refused: {refusal}");
            return Ok(Some(format!("error: {refusal}")));
        };
        crate::log!("upgrade ({why}): starting a new master from {}", program.display());
        self.counts.upgrades += 1;
        let argv0 = self.config.program.clone().unwrap_or_else(|| program.clone().into_os_string());
        // Its readiness channel and the pipes a start opens (five descriptors,
        // however many sockets it hands down: `start_new_master`) may come
        // from the reserve when this master is at its open-file limit.
        self.fd_reserve.release();
        let started = {
            let mut fds: Vec<(FdRole, BorrowedFd<'_>)> =
                self.listening_sockets().into_iter().map(|(key, fd)| (FdRole::Listener(key), fd)).collect();
            if let Some(control) = &self.control {
                fds.push((FdRole::Control, control.listener()));
            }
            let launch = Launch {
                program: &program,
                argv0: &argv0,
                args: &self.config.exec.args,
                fds: &fds,
                activated: self.activated,
                control_file: self.control.as_ref().and_then(|control| control.file()),
            };
            start_new_master(&launch)
        };
        self.fd_reserve.refill(self.stats_fd.as_fd());
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                let reason = format!("cannot start {}: {e}", program.display());
                crate::log!(warn: "upgrade failed: {reason}; this master (pid {}) keeps serving", std::process::id());
                self.counts.upgrades_failed += 1;
                return Ok(Some(format!("error: upgrade failed: {reason}")));
            }
        };
        let timeout = self.config.shutdown_timeout;
        crate::log!(
            "upgrade: new master started (pid {}); it has {:.1} s (--shutdown-timeout) to be ready",
            started.pid,
            timeout.as_secs_f64()
        );
        self.upgrades.attempts = self.upgrades.attempts.wrapping_add(1);
        self.reactor.poll_readable(started.channel.fd(), Op::UpgradeChannel.token(0, self.upgrades.attempts))?;
        let phase = Phase::Starting { channel: Some(started.channel), deadline: Instant::now() + timeout };
        self.upgrades.successor = Some(Successor { pid: started.pid, speaker: None, phase, requester, reaped: false });
        self.notify_upgrading();
        Ok(None)
    }

    /// Why an upgrade cannot begin now, if it cannot.
    fn upgrade_refusal(&self) -> Option<String> {
        if let Some(takeover) = &self.upgrades.takeover {
            return Some(format!("this master is still taking over from pid {}: try once it serves", takeover.from));
        }
        if let Some(successor) = &self.upgrades.successor {
            let pid = successor.serving();
            return Some(match successor.phase {
                Phase::Starting { .. } => format!("an upgrade is already under way (new master pid {pid})"),
                Phase::HandingOver | Phase::HandedOver => format!("this master has handed over to pid {pid}"),
                Phase::Abandoned { .. } => {
                    format!("the new master of the last upgrade (pid {pid}) is still stopping: try again in a moment")
                }
            });
        }
        self.stop_refusal().or_else(|| self.refusal_while_reloading())
    }

    /// The new master's readiness channel has something to read (or ended).
    pub(super) fn on_upgrade_channel(&mut self, epoch: u32, more: bool) -> io::Result<()> {
        if epoch != self.upgrades.attempts {
            return Ok(());
        }
        let Some(Successor { pid, phase: Phase::Starting { channel: Some(channel), deadline }, .. }) =
            self.upgrades.successor.as_mut()
        else {
            return Ok(());
        };
        let pid = *pid;
        match channel.listen() {
            Ok(Heard::Nothing) if more => Ok(()),
            Ok(Heard::Nothing) => self.reactor.poll_readable(channel.fd(), Op::UpgradeChannel.token(0, epoch)),
            Ok(Heard::Ready) => self.hand_over(),
            Ok(Heard::Closed) => {
                *deadline = (*deadline).min(Instant::now() + CLOSED_GRACE);
                self.close_upgrade_channel()
            }
            Ok(Heard::Garbled(said)) => self
                .upgrade_failed(&format!("the new master (pid {pid}) said {said:?} instead of that it is ready"), true),
            Err(e) => self.upgrade_failed(&format!("cannot read the new master's readiness channel: {e}"), true),
        }
    }

    /// Stops waiting on the readiness channel and closes it.
    fn close_upgrade_channel(&mut self) -> io::Result<()> {
        let Some(Successor { phase: Phase::Starting { channel, .. }, .. }) = self.upgrades.successor.as_mut() else {
            return Ok(());
        };
        if let Some(channel) = channel.take() {
            self.reactor.cancel(Op::UpgradeChannel.token(0, self.upgrades.attempts))?;
            self.reactor.close(channel.into_fd())?;
        }
        Ok(())
    }

    /// The new master is ready: stop accepting (connections still in the
    /// queues are the new master's), leave it the control socket, and drain
    /// once the accept has ended ([`Master::step_upgrade`]).
    fn hand_over(&mut self) -> io::Result<()> {
        if let Some(successor) = self.upgrades.successor.as_mut() {
            if let Phase::Starting { channel: Some(channel), .. } = &successor.phase {
                successor.speaker = channel.speaker().filter(|&speaker| speaker != successor.pid);
            }
        }
        self.close_upgrade_channel()?;
        let Some(successor) = self.upgrades.successor.as_mut() else { return Ok(()) };
        successor.phase = Phase::HandingOver;
        let (pid, requester) = (successor.serving(), successor.requester.take());
        let through = match successor.speaker {
            Some(_) => format!(" (started through pid {}, which did not exec it)", successor.pid),
            None => String::new(),
        };
        let me = std::process::id();
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        crate::log!(
            "upgrade: the new master (pid {pid}){through} is ready: this master (pid {me}) stops accepting, then \
             drains its {} and exits",
            counted(running, "worker")
        );
        // Lame ducks from now, before the reply: their health paths answer
        // `503` at once, not only once the accept has ended and their drain
        // begins (until 2026-12-06 a probe right after the reply got `200`).
        for slot in 0..self.slots.len() {
            self.mark_lame_duck(slot);
        }
        self.refresh_routes();
        if let Some(id) = requester {
            self.answer_later(id, &format!("ok upgraded: pid {pid} serves; pid {me} drains its workers and exits"))?;
        }
        self.hand_over_control()?;
        self.hand_over_metrics()?;
        self.dispatch.balance.hand_over();
        self.stop_notifying();
        if self.dispatch.accepting {
            self.reactor.cancel(Op::Accept.token(0, 0))?;
        }
        Ok(())
    }

    /// The upgrade failed (`reason`): say so, answer the client that asked,
    /// and stop the new master if it may still be running.
    fn upgrade_failed(&mut self, reason: &str, running: bool) -> io::Result<()> {
        if let Some(Successor { phase: Phase::Starting { channel: Some(channel), .. }, .. }) = &self.upgrades.successor
        {
            // Before the signal: a new master that said it is ready, the word
            // unread here, learns from this that it was given up, whoever
            // else signalled it too. One that cannot hear it has exited.
            let _ = channel.give_up();
        }
        self.close_upgrade_channel()?;
        let Some(Successor { pid, requester, .. }) = self.upgrades.successor.take() else { return Ok(()) };
        let serving = if !self.stop_begun() {
            format!("; this master (pid {}) keeps serving", std::process::id())
        } else {
            String::new()
        };
        crate::log!(warn: "upgrade failed: {reason}{serving}");
        self.counts.upgrades_failed += 1;
        if self.dispatch.balance.upgrade_given_up() {
            crate::log!(
                "reuseport: this master's steering program steers again (put back on the group, in place of any the \
                 new master attached)"
            );
        }
        if let Some(id) = requester {
            self.answer_later(id, &format!("error: upgrade failed: {reason}"))?;
        }
        if running {
            // Not reaped yet, so the pid is still that child's.
            crate::log!("upgrade: stopping the new master (pid {pid})");
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            let phase = Phase::Abandoned { kill_at: Instant::now() + self.config.shutdown_timeout, killed: false };
            self.upgrades.successor = Some(Successor { pid, speaker: None, phase, requester: None, reaped: false });
        }
        Ok(())
    }

    /// A child that is not a worker exited (`clean`: with code 0): if it is
    /// the new master, the upgrade fails (before it was ready), or is over
    /// (it was stopped).
    pub(super) fn upgrade_child_exited(&mut self, pid: u32, how: &str, clean: bool) -> io::Result<()> {
        let Some(successor) = self.upgrades.successor.as_mut().filter(|s| s.pid == pid) else { return Ok(()) };
        successor.reaped = true;
        match successor.phase {
            Phase::Starting { .. } => {
                self.upgrade_failed(&format!("the new master (pid {pid}) {how} before it was ready"), false)
            }
            Phase::Abandoned { .. } => {
                crate::log!("upgrade: the new master (pid {pid}) {how}");
                self.upgrades.successor = None;
                // It may have put its own on the listeners after the give-up.
                let _ = self.dispatch.balance.upgrade_given_up();
                Ok(())
            }
            // A clean exit is a stop someone asked for, or a hand-over in
            // turn to a newer master (upgrades faster than this drain):
            // which one, this master cannot tell, and neither is a fault.
            Phase::HandingOver | Phase::HandedOver if clean => {
                crate::log!(
                    "upgrade: the new master (pid {pid}) {how} after this one handed over: it was stopped, or \
                     handed over in turn"
                );
                Ok(())
            }
            Phase::HandingOver | Phase::HandedOver => {
                crate::log!(error:
                    "upgrade: the new master (pid {pid}) {how} after this one handed over: nothing will accept once \
                     this master has drained"
                );
                Ok(())
            }
        }
    }

    /// Moves upgrades on, each loop turn: the new master reports ready once
    /// every worker is; the old one drains once its accept has ended.
    pub(super) fn step_upgrade(&mut self) -> io::Result<()> {
        if self.upgrades.takeover.is_some() {
            if self.stopping.is_some() {
                if let Some(takeover) = self.upgrades.takeover.take() {
                    crate::log!(
                        "upgrade: stopping before every worker was ready: the old master (pid {}) keeps serving",
                        takeover.from
                    );
                    self.notify_nothing_more();
                }
            } else if self.all_workers_ready() {
                self.report_ready()?;
            }
        }
        let handing_over = self.upgrades.successor.as_ref().is_some_and(|s| matches!(s.phase, Phase::HandingOver));
        if handing_over && !self.dispatch.accepting {
            if let Some(successor) = self.upgrades.successor.as_mut() {
                successor.phase = Phase::HandedOver;
            }
            if self.stopping.is_none() {
                let running = self.slots.iter().filter(|s| s.process.is_some()).count();
                crate::log!("upgrade: this master no longer accepts: draining {}", counted(running, "worker"));
                // What it holds goes to its workers before their `Drain`, not to a `503`.
                self.hand_off_before_drain();
                self.drain_everything()?;
            }
        }
        Ok(())
    }

    /// Each tick: a new master late to be ready fails the upgrade; one that
    /// ignores the request to stop is killed.
    pub(super) fn watch_upgrade(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let timeout = self.config.shutdown_timeout.as_secs_f64();
        let Some(successor) = self.upgrades.successor.as_mut() else { return Ok(()) };
        let pid = successor.pid;
        match &mut successor.phase {
            Phase::Starting { channel: None, deadline } if now >= *deadline => self.upgrade_failed(
                &format!("the new master (pid {pid}) closed its readiness channel without saying it is ready"),
                true,
            ),
            Phase::Starting { channel: Some(channel), deadline } if now >= *deadline => {
                // It may have said it is ready as the time ran out, unread yet:
                // its last word decides, and it can say nothing after it.
                if matches!(channel.last_word(), Ok(Heard::Ready)) {
                    return self.hand_over();
                }
                self.upgrade_failed(
                    &format!("the new master (pid {pid}) was not ready within {timeout:.1} s (--shutdown-timeout)"),
                    true,
                )
            }
            Phase::Abandoned { kill_at, killed } if now >= *kill_at && !*killed => {
                *killed = true;
                crate::log!(warn: "upgrade: the new master (pid {pid}) did not stop within {timeout:.1} s: killing it");
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Why a reload or a scale cannot begin now: an upgrade's new master is
    /// starting, and once it is ready this master drains every worker, so
    /// what the reload or scale started would go with them (until
    /// 2026-12-06 both were answered `ok` and then dropped so).
    pub(super) fn refusal_while_upgrading(&self) -> Option<String> {
        let pid = self.upgrades.starting()?;
        Some(format!("an upgrade is under way (new master pid {pid}): ask the new master once it serves"))
    }

    /// Gives up an upgrade under way: this master is stopping.
    pub(super) fn abandon_upgrade(&mut self) -> io::Result<()> {
        if self.upgrades.successor.as_ref().is_some_and(|s| matches!(s.phase, Phase::Starting { .. })) {
            self.upgrade_failed("this master is stopping", true)?;
        }
        Ok(())
    }

    /// The last line of a master that handed over.
    pub(super) fn log_handed_over(&self) {
        if let Some(pid) = self.upgrades.handed_over_to() {
            match super::take_over::started_at(pid) {
                Some(_) => crate::log!("upgrade: done: every worker of this master has exited; pid {pid} serves"),
                None => crate::log!(warn:
                    "upgrade: done: every worker of this master has exited; pid {pid}, which it handed over to, has \
                     exited since"
                ),
            }
        }
    }
}
