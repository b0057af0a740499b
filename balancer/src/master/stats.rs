//! The stats line: every worker's counters, read from the shared block the
//! workers write, plus what its exited processes counted; each worker's
//! request rate, sampled once a second; its process's CPU and memory.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringmaster_engine::stats::STATE_STOPPED;

use super::Master;
use crate::metrics::procfs::proc_stat;
use crate::stats_line::{stats_json, WorkerRow};

/// How often each worker's request rate is sampled.
const RATE_EVERY: Duration = Duration::from_secs(1);

/// A worker's request rate: the count at the last sample, and the rate then.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rate {
    at: Instant,
    requests: u64,
    pub(super) per_second: f64,
}

impl Rate {
    pub(super) fn new(now: Instant) -> Rate {
        Rate { at: now, requests: 0, per_second: 0.0 }
    }
}

impl Master {
    /// Every worker as the stats line and the metrics show it.
    pub(super) fn worker_rows(&self) -> Vec<WorkerRow> {
        self.workers
            .iter()
            .map(|w| {
                let mut counts = w.totals;
                counts.live = 0;
                counts.state = STATE_STOPPED;
                let (mut uptime_ms, mut lame_duck, mut process, mut routing) = (0, false, None, None);
                for (index, slot) in self.slots.iter().enumerate() {
                    let Some(p) = slot.process.as_ref().filter(|p| p.worker == w.id) else { continue };
                    let Some(counters) = self.stats.slot(index) else { continue };
                    let current = counters.snapshot();
                    counts.accepted += current.accepted;
                    counts.requests += current.requests;
                    counts.rejected += current.rejected;
                    counts.fd_limit_hits += current.fd_limit_hits;
                    counts.idle_reclaimed += current.idle_reclaimed;
                    counts.handler_panics += current.handler_panics;
                    counts.live += current.live;
                    if w.slot == Some(index) {
                        counts.state = current.state;
                        counts.capacity = current.capacity;
                        uptime_ms = p.started.elapsed().as_millis() as u64;
                        lame_duck = counters.is_lame_duck();
                        process = proc_stat(p.pid);
                        routing = self.routing_of(Some(index), w.passed_over);
                    }
                }
                if routing.is_none() {
                    routing = self.routing_of(None, w.passed_over);
                }
                WorkerRow {
                    id: w.id,
                    pid: w.last_pid,
                    running: w.slot.is_some(),
                    cpu: w.cpu,
                    counts,
                    restarts: w.restarts,
                    uptime_ms,
                    steer: self.dispatch.balance.steer_view(w.id),
                    lame_duck,
                    unstable_restarts: w.unstable_restarts,
                    req_per_s: w.rate.per_second,
                    process,
                    routing,
                }
            })
            .collect()
    }

    pub(super) fn stats_line(&mut self) -> String {
        self.with_a_number_for_proc(|master, _| {
            let rows = master.worker_rows();
            let mode = (master.config.mode.name(), master.dispatch.balance.steering());
            stats_json(mode, master.backend.name(), master.dispatch.refused, &master.retired_counts, &rows)
        })
    }

    /// Prints the stats line on stdout.
    pub(super) fn print_stats(&mut self) {
        let mut line = self.stats_line();
        line.push('\n');
        crate::log::sink::write(crate::log::sink::Stream::Stdout, line.as_bytes());
    }

    /// Samples each worker's request count once a second (from the tick):
    /// its rate is the requests of the last second.
    pub(super) fn sample_rates(&mut self) {
        let now = Instant::now();
        if !self.workers.iter().any(|w| now.duration_since(w.rate.at) >= RATE_EVERY) {
            return;
        }
        // Each worker's requests: its exited processes' and its running ones'.
        let mut requests: HashMap<usize, u64> = self.workers.iter().map(|w| (w.id, w.totals.requests)).collect();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(process) = slot.process.as_ref() else { continue };
            let current = self.stats.slot(index).map_or(0, |c| c.requests.load(Ordering::Relaxed));
            *requests.entry(process.worker).or_default() += current;
        }
        for worker in &mut self.workers {
            let elapsed = now.duration_since(worker.rate.at);
            if elapsed < RATE_EVERY {
                continue;
            }
            let count = requests.get(&worker.id).copied().unwrap_or(0);
            let per_second = count.saturating_sub(worker.rate.requests) as f64 / elapsed.as_secs_f64();
            worker.rate = Rate { at: now, requests: count, per_second };
        }
    }
}
