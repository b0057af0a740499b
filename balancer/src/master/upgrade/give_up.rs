//! Binary upgrade, as the old master: an upgrade that fails (a new master
//! that exits, is late or garbles its word), and its new master stopped.

use std::io;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Phase, Successor};
use crate::master::Master;
use crate::upgrade::launch::Heard;

impl Master {
    /// The upgrade failed (`reason`): say so, answer the client that asked,
    /// and stop the new master if it may still be running.
    pub(super) fn upgrade_failed(&mut self, reason: &str, running: bool) -> io::Result<()> {
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
    pub(in crate::master) fn upgrade_child_exited(&mut self, pid: u32, how: &str, clean: bool) -> io::Result<()> {
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

    /// Each tick: a new master late to be ready fails the upgrade; one that
    /// ignores the request to stop is killed.
    pub(in crate::master) fn watch_upgrade(&mut self) -> io::Result<()> {
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

    /// Gives up an upgrade under way: this master is stopping.
    pub(in crate::master) fn abandon_upgrade(&mut self) -> io::Result<()> {
        if self.upgrades.successor.as_ref().is_some_and(|s| matches!(s.phase, Phase::Starting { .. })) {
            self.upgrade_failed("this master is stopping", true)?;
        }
        Ok(())
    }
}
