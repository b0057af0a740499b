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
//!
//! The state of an upgrade and its start are here; `hand_over.rs` holds
//! the new master's word and the hand-over that follows it, `give_up.rs` an
//! upgrade that fails: its new master stopped, killed if it overruns.

mod give_up;
mod hand_over;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::take_over::started_at;
use super::{Master, Op};
use crate::control::ClientId;
use crate::listener::ListenerKey;
use crate::upgrade::env::FdRole;
use crate::upgrade::inherit::Takeover;
use crate::upgrade::launch::{start_new_master, Launch, ReadyChannel};

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

    /// Why a reload or a scale cannot begin now: an upgrade's new master is
    /// starting, and once it is ready this master drains every worker, so
    /// what the reload or scale started would go with them (until
    /// 2026-12-06 both were answered `ok` and then dropped so).
    pub(super) fn refusal_while_upgrading(&self) -> Option<String> {
        let pid = self.upgrades.starting()?;
        Some(format!("an upgrade is under way (new master pid {pid}): ask the new master once it serves"))
    }
}
