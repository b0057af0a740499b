//! What systemd is told (`Type=notify`, when `$NOTIFY_SOCKET` is set):
//! `READY=1` once every worker is ready; `RELOADING=1` with
//! `MONOTONIC_USEC=` when a rolling reload or an upgrade begins, and
//! `READY=1` when the reload is done or the upgrade failed (a successful
//! upgrade's `READY=1` is the new master's, with `MAINPID=` first, sent
//! before the old master is told); `STOPPING=1` when a stop begins (a new
//! master stopped before it took over says nothing); `STATUS=` with what
//! the workers are doing, when it changes; `WATCHDOG=1` pings when
//! `WatchdogSec=` asks for them. What still waits for room as a master
//! exits gets a bounded blocking send (`Notifier`'s drop); what the old
//! master of an upgrade still holds at the hand-over is dropped.

use std::time::Instant;

use super::Master;
use crate::log::counted;
use crate::systemd::notify::{monotonic_usec, FLUSH_WITHIN};

/// What systemd has been told.
#[derive(Debug, Default)]
pub(super) struct Notified {
    /// `READY=1` was sent (the first time).
    ready: bool,
    /// `RELOADING=1` was sent: `READY=1` follows when the reload is done.
    reloading: bool,
    /// The last `STATUS=`.
    status: String,
    /// As the new master of an upgrade: `MAINPID=` with this pid was sent
    /// (or waits for room: the old master is told only once it has gone).
    took_over: bool,
}

impl Master {
    fn notify(&mut self, message: &str) {
        if let Some(notifier) = self.notifier.as_mut() {
            notifier.send(message);
        }
    }

    /// Each loop turn: the first `READY=1`, once every worker is ready (a
    /// master taking over says so once it has told the old one).
    pub(super) fn notify_ready(&mut self) {
        let waiting = self.notifier.is_some() && !self.notified.ready;
        if !waiting || self.stopping.is_some() || self.upgrades.is_taking_over() || !self.all_workers_ready() {
            return;
        }
        self.notified.ready = true;
        let status = self.status_text();
        self.notify(&format!("READY=1\nSTATUS={status}"));
        self.notified.status = status;
    }

    /// As the new master of an upgrade, every worker ready: systemd is told
    /// this process is the main one now, and ready, before the old master is
    /// told (it exits soon after, and systemd must not take that for the
    /// service's end).
    pub(super) fn notify_took_over(&mut self) {
        if self.notifier.is_none() || self.notified.took_over {
            return;
        }
        self.notified.took_over = true;
        self.notified.ready = true;
        let status = self.status_text();
        self.notify(&format!("MAINPID={}\nREADY=1\nSTATUS={status}", std::process::id()));
        self.notified.status = status;
    }

    /// As the new master of an upgrade: `MAINPID=` with this pid has left
    /// for systemd, not waiting for room. The old master is told only then:
    /// told before, it could drain and exit while systemd still took it for
    /// the main process, and take its exit for the service's.
    pub(super) fn main_pid_sent(&self) -> bool {
        !self.notifier.as_ref().is_some_and(|n| n.waits())
    }

    /// As the new master of an upgrade the old master gave up just as this
    /// one said it is ready (after [`Master::notify_took_over`]): the old
    /// master is the main process again, and this one says nothing more.
    /// That goes before this master stops, waiting for room if it must
    /// (at most [`FLUSH_WITHIN`]): lost, systemd would take this one's exit
    /// for the service's.
    pub(super) fn notify_gave_back(&mut self, old: u32) {
        self.notify(&format!("MAINPID={old}\nREADY=1\nSTATUS=serving: the upgrade was given up; pid {old} serves on"));
        self.finish_notifying();
    }

    /// As a new master its old master gave up as it stopped (after
    /// [`Master::notify_took_over`]): the old master is the main process
    /// again, until it has stopped, and this one says nothing more (what
    /// waits goes first, as in [`Master::notify_gave_back`]).
    pub(super) fn notify_given_up_stopping(&mut self, old: u32) {
        self.notify(&format!("MAINPID={old}\nSTATUS=stopping: the upgrade was given up; pid {old} stops"));
        self.finish_notifying();
    }

    /// As a new master stopping before it told the old one it is ready: its
    /// `MAINPID=`, if made, still waits for room (it is told only once that
    /// has gone): it must not go now, and nothing else either.
    pub(super) fn notify_nothing_more(&mut self) {
        if let Some(notifier) = self.notifier.take() {
            notifier.discard("this master stops before it took over; the old master serves on");
        }
    }

    /// As the old master of an upgrade that succeeded: the new one speaks to
    /// systemd from now on. What this one still holds is older than the new
    /// master's `MAINPID=` and `READY=1` (sent before it said it is ready):
    /// sent late, a `RELOADING=1` would leave the service reloading for
    /// good, a `STATUS=` undo the new master's. It is dropped.
    pub(super) fn stop_notifying(&mut self) {
        if let Some(notifier) = self.notifier.take() {
            notifier.discard("the new master speaks for the service now");
        }
    }

    /// This process says nothing more: what waits goes now, waiting for room
    /// at most [`FLUSH_WITHIN`] (a master that exits has no later tick).
    pub(super) fn finish_notifying(&mut self) {
        if let Some(mut notifier) = self.notifier.take() {
            notifier.flush(FLUSH_WITHIN);
        }
    }

    /// As the old master, a new master started: the service reloads until
    /// it is ready (its `MAINPID=` and `READY=1`) or the upgrade fails
    /// (this master's `READY=1`, once no new master is starting). Said now
    /// or not at all: waiting for room, it could reach systemd after the new
    /// master's `READY=1`, and leave the service reloading for good.
    pub(super) fn notify_upgrading(&mut self) {
        // Not ready yet: the new master's `READY=1` ends the start instead.
        if !self.notified.ready {
            return;
        }
        let status = self.status_text();
        let message = format!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}", monotonic_usec());
        let Some(notifier) = self.notifier.as_mut() else { return };
        if notifier.send_now_or_never(&message) {
            self.notified.reloading = true;
        } else {
            crate::log!(warn: "systemd's notify socket is full: not telling it the upgrade reloads the service");
        }
        // Not sent later by a tick either.
        self.notified.status = status;
    }

    /// A rolling reload (or an upgrade) begins.
    pub(super) fn notify_reloading(&mut self) {
        if self.notifier.is_none() {
            return;
        }
        self.notified.reloading = true;
        let status = self.status_text();
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}", monotonic_usec()));
        self.notified.status = status;
    }

    /// A stop begins (not the drain that follows a hand-over: the new master
    /// is systemd's now; nor the stop of a new master not yet ready: the
    /// service is still the old master's, which serves on, and systemd would
    /// take `STOPPING=1` from any process of the unit for the service's).
    pub(super) fn notify_stopping(&mut self) {
        if self.notifier.is_none() || self.upgrades.is_taking_over() {
            return;
        }
        // No `READY=1` for a reload or an upgrade under way: the service stops.
        self.notified.reloading = false;
        let status = self.status_text();
        self.notify(&format!("STOPPING=1\nSTATUS={status}"));
        self.notified.status = status;
    }

    /// Each tick: what waited for room in systemd's socket, the watchdog,
    /// `READY=1` after a reload that is done or an upgrade that failed, and
    /// `STATUS=` when it changed.
    pub(super) fn notify_tick(&mut self) {
        let Some(notifier) = self.notifier.as_mut() else { return };
        notifier.on_tick(Instant::now());
        let settled = !self.reload.under_way() && self.upgrades.starting().is_none();
        if self.notified.reloading && settled && self.all_workers_ready() {
            self.notified.reloading = false;
            let status = self.status_text();
            self.notify(&format!("READY=1\nSTATUS={status}"));
            self.notified.status = status;
            return;
        }
        if !self.notified.ready {
            return;
        }
        let status = self.status_text();
        if status != self.notified.status {
            self.notify(&format!("STATUS={status}"));
            self.notified.status = status;
        }
    }

    /// One line on what the master does: `serving: 4 of 4 workers ready (mode rr, uring)`
    /// (`upgrading (new master pid N starting): ...` while a new master starts).
    fn status_text(&self) -> String {
        let wanted = self.active_workers();
        let ready = self
            .workers
            .iter()
            .filter(|w| !w.retired)
            .filter(|w| w.slot.is_some_and(|s| self.slots[s].process.as_ref().is_some_and(|p| p.ready)))
            .count();
        let upgrading;
        let doing = if self.stopping.is_some() {
            "stopping"
        } else if self.lame_duck.is_some() {
            "lame duck (--drain-delay)"
        } else if self.reload.under_way() {
            "reloading"
        } else if let Some(pid) = self.upgrades.starting() {
            upgrading = format!("upgrading (new master pid {pid} starting)");
            upgrading.as_str()
        } else {
            "serving"
        };
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        let plural = if wanted == 1 { "" } else { "s" };
        if self.stopping.is_some() {
            format!(
                "{doing}: {} left ({} mode, {})",
                counted(running, "worker process"),
                self.config.mode.name(),
                self.backend.name()
            )
        } else {
            format!(
                "{doing}: {ready} of {wanted} worker{plural} ready ({} mode, {})",
                self.config.mode.name(),
                self.backend.name()
            )
        }
    }
}
