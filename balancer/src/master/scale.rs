//! Scaling at run time (workers added, or the newest retired), and how a
//! process is retired, by a scale-down or a reload: it is a lame duck at
//! once (its health path answers `503` before it drains), drains, and is
//! killed if it has not exited `--shutdown-timeout` after it was told to.

use std::io;
use std::time::{Duration, Instant};

use ringmaster_engine::Backend;

use super::Master;
use crate::locked_memory::{raised_text, rings_within, room_for_workers, short_text, Room};
use crate::log::counted;

/// Beyond `--shutdown-timeout`, what a retired process gets before it is killed.
const RETIREE_GRACE: Duration = Duration::from_secs(1);

impl Master {
    /// Runs `target` workers: new ones are added, the newest retire gracefully.
    pub(super) fn scale(&mut self, target: usize) -> io::Result<()> {
        if self.stop_begun() {
            return Ok(());
        }
        if let Some(refusal) = self.refusal_while_upgrading() {
            crate::log!("scaling to {target}: {refusal}: not scaling");
            return Ok(());
        }
        let active: Vec<usize> = self.workers.iter().filter(|w| !w.retired).map(|w| w.id).collect();
        if active.len() == target {
            crate::log!("scaling: already at {}", counted(target, "worker"));
            return Ok(());
        }
        crate::log!("scaling from {} to {}", active.len(), counted(target, "worker"));
        if target > active.len() {
            self.room_for_more_rings(target);
        }
        for _ in active.len()..target {
            self.add_worker_or_retry();
        }
        for &id in active.iter().rev().take(active.len().saturating_sub(target)) {
            self.scale_away(id);
        }
        // A worker the reload was replacing no longer holds it up.
        self.step_reload()
    }

    /// On io_uring, room under `RLIMIT_MEMLOCK` for `workers` workers' rings
    /// (see `locked_memory.rs`), said when it had to be made or cannot be.
    fn room_for_more_rings(&mut self, workers: usize) {
        if self.backend != Backend::Uring {
            return;
        }
        match room_for_workers(workers, &self.config.engine) {
            Ok(Room::Enough) => {}
            Ok(Room::Raised { from, to }) => crate::log!("scale: {}", raised_text(workers, from, to)),
            Ok(Room::Short { limit, need }) => {
                let fit = rings_within(limit, &self.config.engine);
                let what = if fit >= workers as u64 {
                    "enough for their rings, not for an upgrade's new workers beside them".to_string()
                } else {
                    format!("the rings of about {fit}: the workers past them fail to start (ENOMEM) and are restarted with the back-off")
                };
                crate::log!(warn:
                    "scale: {}: {what} (raise it: ulimit -l, systemd LimitMEMLOCK=)",
                    short_text(workers, limit, need)
                )
            }
            Err(e) => crate::log!(warn: "scale: cannot read or set RLIMIT_MEMLOCK: {e}"),
        }
    }

    /// Retires worker `id` whole: every process of it drains (while a reload
    /// replaces it, the old one and the new one, ready or not), the reload
    /// forgets it, and it is never restarted. It is listed until its last
    /// process has exited; one with none left (a crashed worker waiting out
    /// its back-off) is removed now.
    fn scale_away(&mut self, id: usize) {
        let Some(index) = self.worker_index(id) else { return };
        self.workers[index].retired = true;
        let pending = self.workers[index].restart_at.take();
        self.drop_from_reload(id);
        // Its own listener (`reuseport`), if any, goes with it: set aside,
        // kept while its processes take their queue as their drain begins,
        // then closed by the master, the last (`set_aside.rs`).
        self.dispatch.balance.set_aside(id);
        let running: Vec<usize> = (0..self.slots.len())
            .filter(|&slot| self.slots[slot].process.as_ref().is_some_and(|p| p.worker == id && !p.retiring))
            .collect();
        for &slot in &running {
            self.retire(slot, "scale");
        }
        // A crashed worker waiting out its back-off: say why it never comes back.
        if pending.is_some() {
            crate::log!(info { worker: id }:
                "scale: the pending restart of worker {id} is dropped: scaling removed its slot");
        }
        let any_left = self.slots.iter().any(|s| s.process.as_ref().is_some_and(|p| p.worker == id));
        if !any_left {
            self.remove_worker(index);
        }
    }

    /// Marks the process in `slot` a lame duck: its health path answers
    /// `503` from now on, while it still serves.
    pub(super) fn mark_lame_duck(&self, slot: usize) {
        if self.slots[slot].process.is_some() {
            if let Some(counters) = self.stats.slot(slot) {
                counters.set_lame_duck(true);
            }
        }
    }

    /// Tells a process to finish its connections and exit; it takes no new
    /// ones from now, and its health path answers `503` at once (before its
    /// `Drain` has gone down its lane); what was queued for it goes to the
    /// others. `why` (`reload`, `scale`) names it in the log if it has to be
    /// killed `--shutdown-timeout` from now.
    pub(super) fn retire(&mut self, slot: usize, why: &'static str) {
        self.mark_lame_duck(slot);
        // A second more than the process's own drain, counted from when its
        // `Drain` arrives: a live one ends by itself, a little after this.
        let deadline = Instant::now() + self.config.shutdown_timeout + RETIREE_GRACE;
        if let Some(process) = self.slots[slot].process.as_mut() {
            process.retiring = true;
            process.drain_deadline.get_or_insert((deadline, why));
            self.request_drain_of(slot);
        }
        self.refresh_routes();
        // What was queued for it goes to the others (a stop drains it all instead).
        if self.stopping.is_none() {
            self.reroute_queue_of(slot);
        }
    }

    /// Each tick: kills the processes retired by a reload or a scale-down
    /// that are still running `--shutdown-timeout` after they were told to
    /// drain. A live one ends its drain by itself at about that time (the
    /// same timeout, counted from when its `Drain` arrives); a stopped or
    /// wedged one never would, and the reload would wait on it for ever
    /// (the watchdog may be off), as a stop does not. Its exit moves the
    /// reload on. A scaled-away worker's set-aside listener is let go of
    /// first: killed, a stopped worker's armed io_uring accepts would take
    /// what waits there into the dying ring. The let-go waits for the
    /// packets in flight off the loop: the kill comes at a tick after it.
    pub(super) fn kill_overdue_retirees(&mut self) {
        let now = Instant::now();
        let timeout = self.config.shutdown_timeout.as_secs_f64();
        let overdue: Vec<usize> = (self.slots.iter().filter_map(|s| s.process.as_ref()))
            .filter(|p| p.drain_deadline.is_some_and(|(deadline, _)| now >= deadline))
            .map(|p| p.worker)
            .collect();
        for worker in overdue {
            self.let_go_set_aside(worker, Some("it is killed"));
        }
        let letting_go = self.workers_letting_go();
        for process in self.slots.iter_mut().filter_map(|s| s.process.as_mut()) {
            let Some((deadline, why)) = process.drain_deadline else { continue };
            // Killed once its listener's let-go is over, at a tick to come.
            if now < deadline || letting_go.contains(&process.worker) {
                continue;
            }
            process.drain_deadline = None;
            let (id, pid) = (process.worker, process.pid);
            crate::log!(warn { worker: id, worker_pid: pid }:
                "{why}: worker {id} (pid {pid}) still running a second after --shutdown-timeout {timeout:.1} s: \
                 killing it");
            process.kill("after overrunning its drain");
        }
    }
}
