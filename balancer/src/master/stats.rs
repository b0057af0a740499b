//! The stats line: every worker's counters, read from the shared block the
//! workers write, plus what its exited processes counted.

use std::io::{self, Write as _};

use ringmaster_engine::stats::STATE_STOPPED;

use super::Master;
use crate::stats_line::{stats_json, WorkerRow};

impl Master {
    pub(super) fn stats_line(&self) -> String {
        let rows: Vec<WorkerRow> = self
            .workers
            .iter()
            .map(|w| {
                let mut counts = w.totals;
                counts.live = 0;
                counts.state = STATE_STOPPED;
                let mut uptime_ms = 0;
                for (index, slot) in self.slots.iter().enumerate() {
                    let Some(process) = slot.process.as_ref().filter(|p| p.worker == w.id) else { continue };
                    let Some(current) = self.stats.slot(index).map(|c| c.snapshot()) else { continue };
                    counts.accepted += current.accepted;
                    counts.requests += current.requests;
                    counts.rejected += current.rejected;
                    counts.live += current.live;
                    if w.slot == Some(index) {
                        counts.state = current.state;
                        uptime_ms = process.started.elapsed().as_millis() as u64;
                    }
                }
                WorkerRow {
                    id: w.id,
                    pid: w.last_pid,
                    running: w.slot.is_some(),
                    cpu: w.cpu,
                    counts,
                    restarts: w.restarts,
                    uptime_ms,
                    steer: self.dispatch.balance.steer_load(w.id),
                }
            })
            .collect();
        stats_json(self.config.mode.name(), self.backend.name(), self.dispatch.refused, &rows)
    }

    /// Prints the stats line on stdout.
    pub(super) fn print_stats(&self) {
        let line = self.stats_line();
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
