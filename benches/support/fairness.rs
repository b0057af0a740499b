//! The per-worker split of one end-to-end group, from the difference of two
//! stats lines, and Jain's fairness index over it.

use std::fmt::Write as _;

use super::server::{Snapshot, WorkerStats};

/// Jain's fairness index, `(sum x)^2 / (n * sum x^2)`: 1 when every worker got
/// the same, `1/n` when one got everything; `None` when nothing was counted.
pub fn jain(values: &[u64]) -> Option<f64> {
    let n = values.len() as f64;
    let sum: f64 = values.iter().map(|&x| x as f64).sum();
    let squares: f64 = values.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if values.is_empty() || squares == 0.0 {
        return None;
    }
    Some(sum * sum / (n * squares))
}

/// What each worker did between two stats lines (matched by worker id).
pub fn delta(before: &[WorkerStats], after: &[WorkerStats]) -> Vec<WorkerStats> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.id == a.id);
            // A restarted worker starts its counters at zero: then all of `a` is new.
            let since = |now: u64, then: Option<u64>| match then {
                Some(then) if then <= now => now - then,
                _ => now,
            };
            WorkerStats {
                id: a.id,
                pid: a.pid,
                cpu: a.cpu,
                accepted: since(a.accepted, b.map(|b| b.accepted)),
                requests: since(a.requests, b.map(|b| b.requests)),
                live: a.live,
            }
        })
        .collect()
}

/// The Markdown table of one group: a row per mode.
#[derive(Debug)]
pub struct Table {
    text: String,
}

impl Table {
    /// Starts the table for `group`.
    pub fn new(group: &str) -> Table {
        let mut text = format!("### {group}\n\n");
        text.push_str(
            "| mode | accepted per worker | requests per worker | Jain (accepted) | Jain (requests) \
             | server CPU s | requests per server CPU-s |\n",
        );
        text.push_str("|---|---|---|---|---|---|---|\n");
        Table { text }
    }

    /// Adds what one mode's server did between two snapshots (workers in id
    /// order, `cpuN` when pinned), with its CPU time over that span.
    pub fn row(&mut self, mode: &str, before: &Snapshot, after: &Snapshot) {
        let mut split = delta(&before.workers, &after.workers);
        let cpu = after.cpu_seconds - before.cpu_seconds;
        split.sort_by_key(|w| w.id);
        let list = |get: fn(&WorkerStats) -> u64| {
            split
                .iter()
                .map(|w| match w.cpu {
                    Some(cpu) => format!("w{} (cpu{cpu}): {}", w.id, get(w)),
                    None => format!("w{}: {}", w.id, get(w)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let accepted: Vec<u64> = split.iter().map(|w| w.accepted).collect();
        let requests: Vec<u64> = split.iter().map(|w| w.requests).collect();
        let total: u64 = requests.iter().sum();
        let per_cpu = if cpu > 0.0 { format!("{:.0}", total as f64 / cpu) } else { "n/a".to_string() };
        let _ = writeln!(
            self.text,
            "| {mode} | {} | {} | {} | {} | {cpu:.2} | {per_cpu} |",
            list(|w| w.accepted),
            list(|w| w.requests),
            show(jain(&accepted)),
            show(jain(&requests)),
        );
    }

    /// Notes a mode whose stats could not be read.
    pub fn missing(&mut self, mode: &str, why: &str) {
        let _ = writeln!(self.text, "| {mode} | stats unavailable: {why} | | | | | |");
    }

    /// The finished table.
    pub fn into_text(self) -> String {
        self.text
    }
}

fn show(index: Option<f64>) -> String {
    index.map_or_else(|| "n/a".to_string(), |j| format!("{j:.4}"))
}
