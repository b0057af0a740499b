//! What systemd is told (`Type=notify`, when `$NOTIFY_SOCKET` is set):
//! `READY=1` once every worker is ready (after an upgrade, from the new
//! master, with `MAINPID=` first); `RELOADING=1` with `MONOTONIC_USEC=` when
//! a rolling reload begins and `READY=1` when it is done; `STOPPING=1` when
//! a stop begins (a new master stopped before it took over says nothing);
//! `STATUS=` with what the workers are doing, when it changes; `WATCHDOG=1`
//! pings when `WatchdogSec=` asks for them.

use std::time::Instant;

use super::Master;
use crate::log::counted;
use crate::systemd::notify::monotonic_usec;

/// What systemd has been told.
#[derive(Debug, Default)]
pub(super) struct Notified {
    /// `READY=1` was sent (the first time).
    ready: bool,
    /// `RELOADING=1` was sent: `READY=1` follows when the reload is done.
    reloading: bool,
    /// The last `STATUS=`.
    status: String,
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
        if self.notifier.is_none() {
            return;
        }
        self.notified.ready = true;
        let status = self.status_text();
        self.notify(&format!("MAINPID={}\nREADY=1\nSTATUS={status}", std::process::id()));
        self.notified.status = status;
    }

    /// As the new master of an upgrade the old master gave up just as this
    /// one said it is ready (after [`Master::notify_took_over`]): the old
    /// master is the main process again, and this one says nothing more.
    pub(super) fn notify_gave_back(&mut self, old: u32) {
        self.notify(&format!("MAINPID={old}\nREADY=1\nSTATUS=serving: the upgrade was given up; pid {old} serves on"));
        self.notifier = None;
    }

    /// As a new master its old master gave up as it stopped (after
    /// [`Master::notify_took_over`]): the old master is the main process
    /// again, until it has stopped, and this one says nothing more.
    pub(super) fn notify_given_up_stopping(&mut self, old: u32) {
        self.notify(&format!("MAINPID={old}\nSTATUS=stopping: the upgrade was given up; pid {old} stops"));
        self.notifier = None;
    }

    /// As the old master of an upgrade that succeeded: the new one speaks to
    /// systemd from now on.
    pub(super) fn stop_notifying(&mut self) {
        self.notifier = None;
    }

    /// A rolling reload begins.
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
        let status = self.status_text();
        self.notify(&format!("STOPPING=1\nSTATUS={status}"));
        self.notified.status = status;
    }

    /// Each tick: what waited for room in systemd's socket, the watchdog,
    /// `READY=1` after a reload that is done, and `STATUS=` when it changed.
    pub(super) fn notify_tick(&mut self) {
        let Some(notifier) = self.notifier.as_mut() else { return };
        notifier.on_tick(Instant::now());
        if self.notified.reloading && !self.reload.under_way() && self.all_workers_ready() {
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

    /// One line on what the master does: `serving: 4 of 4 workers ready (mode rr, uring)`.
    fn status_text(&self) -> String {
        let wanted = self.active_workers();
        let ready = self
            .workers
            .iter()
            .filter(|w| !w.retired)
            .filter(|w| w.slot.is_some_and(|s| self.slots[s].process.as_ref().is_some_and(|p| p.ready)))
            .count();
        let doing = if self.stopping.is_some() {
            "stopping"
        } else if self.lame_duck.is_some() {
            "lame duck (--drain-delay)"
        } else if self.reload.under_way() {
            "reloading"
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
