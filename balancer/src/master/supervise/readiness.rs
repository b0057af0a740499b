//! Worker processes' readiness: noticed, announced, and a start that is
//! not ready in time killed.

use std::io;
use std::time::{Duration, Instant};

use ringmaster_engine::stats::STATE_READY;

use crate::master::Master;

/// The least time a new process gets to be ready, however short
/// `--shutdown-timeout` is: a start on a busy machine can take a while, and
/// one killed for it would only start again.
const MIN_READY_TIMEOUT: Duration = Duration::from_secs(2);

impl Master {
    /// Marks processes whose worker reported ready; they start taking connections.
    pub(in crate::master) fn notice_ready(&mut self) -> io::Result<()> {
        let mut changed = false;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(process) = slot.process.as_mut() else { continue };
            if !process.ready && self.stats.slot(index).is_some_and(|c| c.snapshot().state == STATE_READY) {
                process.ready = true;
                changed = true;
            }
        }
        if changed {
            self.note_ready();
            self.refresh_routes();
            self.route_held();
            self.step_reload()?;
        }
        self.announce_when_ready();
        Ok(())
    }

    /// How long a new process has to be ready: `--shutdown-timeout`, at
    /// least [`MIN_READY_TIMEOUT`].
    pub(in crate::master) fn ready_timeout(&self) -> Duration {
        self.config.shutdown_timeout.max(MIN_READY_TIMEOUT)
    }

    /// [`Master::ready_timeout`] for a log line, with where it comes from:
    /// `--shutdown-timeout`, or the floor when that is shorter.
    pub(in crate::master) fn ready_timeout_text(&self) -> String {
        let given = self.config.shutdown_timeout;
        if given >= MIN_READY_TIMEOUT {
            format!("{:.1} s (--shutdown-timeout)", given.as_secs_f64())
        } else {
            format!(
                "{:.1} s (the least a new process gets; --shutdown-timeout is {:.1} s)",
                MIN_READY_TIMEOUT.as_secs_f64(),
                given.as_secs_f64()
            )
        }
    }

    /// Gives worker `id`'s current process, just started by `why` (`start`,
    /// `restart`, `scale`), until [`Master::ready_timeout`] from now to get ready.
    pub(in crate::master) fn set_ready_deadline(&mut self, id: usize, why: &'static str) {
        let Some(slot) = self.worker_index(id).and_then(|i| self.workers[i].slot) else { return };
        let deadline = Instant::now() + self.ready_timeout();
        if let Some(process) = self.slots[slot].process.as_mut() {
            process.ready_by = Some((deadline, why));
        }
    }

    /// Each tick: a process started with the master, by a restart or by a
    /// scale-up and still not ready `--shutdown-timeout` after it started (a
    /// start-up that hangs) is killed; its exit plans the worker's next try
    /// with the restart back-off, as a crash does (an unstable restart).
    /// Without this it would hang on for ever, its worker serving nothing.
    /// A retiring one is left to its drain deadline.
    pub(in crate::master) fn kill_unready_starts(&mut self) {
        let now = Instant::now();
        let after = self.ready_timeout_text();
        for process in self.slots.iter_mut().filter_map(|s| s.process.as_mut()) {
            let Some((deadline, why)) = process.ready_by else { continue };
            if process.ready || process.retiring {
                process.ready_by = None;
                continue;
            }
            if now < deadline {
                continue;
            }
            process.ready_by = None;
            let (id, pid) = (process.worker, process.pid);
            crate::log!(warn { worker: id, worker_pid: pid }:
                "{why}: worker {id} (pid {pid}) was not ready after {after}: killing it; \
                 it is restarted with the back-off");
            process.kill("as it was not ready in time");
        }
    }

    /// Logs the listening address once every worker is ready (or time is up),
    /// so whoever waits for that line finds all workers taking connections.
    /// A master that began to stop first never says it: it takes none.
    fn announce_when_ready(&mut self) {
        let Some((local, deadline)) = self.listening else { return };
        if self.stopping.is_some() {
            self.listening = None;
            return;
        }
        if self.all_workers_ready() || Instant::now() >= deadline {
            let workers = self.config.workers;
            let plural = if workers == 1 { "" } else { "s" };
            let mode = self.config.mode.name();
            crate::log!(info { address: local.to_string(), mode: mode, workers: workers }:
                "listening on {local} (mode {mode}, {workers} worker{plural})");
            self.listening = None;
        }
    }

    /// Every worker has a process that is ready.
    pub(in crate::master) fn all_workers_ready(&self) -> bool {
        self.workers.iter().all(|w| w.slot.is_some_and(|s| self.slots[s].process.as_ref().is_some_and(|p| p.ready)))
    }
}
