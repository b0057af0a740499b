//! Binary upgrade, as the old master: the new master's word on its
//! readiness channel, the hand-over once it is ready, the drain after.

use std::io;
use std::time::Instant;

use super::{Phase, Successor, CLOSED_GRACE};
use crate::log::counted;
use crate::master::{Master, Op};
use crate::upgrade::launch::Heard;

impl Master {
    /// The new master's readiness channel has something to read (or ended).
    pub(in crate::master) fn on_upgrade_channel(&mut self, epoch: u32, more: bool) -> io::Result<()> {
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
    pub(super) fn close_upgrade_channel(&mut self) -> io::Result<()> {
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
    pub(super) fn hand_over(&mut self) -> io::Result<()> {
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

    /// Moves upgrades on, each loop turn: the new master reports ready once
    /// every worker is; the old one drains once its accept has ended.
    pub(in crate::master) fn step_upgrade(&mut self) -> io::Result<()> {
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

    /// The last line of a master that handed over.
    pub(in crate::master) fn log_handed_over(&self) {
        if let Some(pid) = self.upgrades.handed_over_to() {
            match crate::master::take_over::started_at(pid) {
                Some(_) => crate::log!("upgrade: done: every worker of this master has exited; pid {pid} serves"),
                None => crate::log!(warn:
                    "upgrade: done: every worker of this master has exited; pid {pid}, which it handed over to, has \
                     exited since"
                ),
            }
        }
    }
}
