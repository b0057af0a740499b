//! The metrics page: every family, from a snapshot of what the master
//! knows (its own counts, each worker's row of the stats line, `/proc`).
//!
//! What is covered, against what operators know from elsewhere:
//! nginx `stub_status` (active, accepts, handled, requests) is each
//! worker's live, accepted, rejected and requests; HAProxy `show info`
//! (`Uptime_sec`, `CurrConns`, `CumConns`, `CumReq`, `Maxconn`, `Stopping`,
//! `Ulimit-n`) is the same plus `--max-conns`, `stopping` and the master's
//! fd limit; PM2 (`cpu`, `memory`, `restart_time`, `unstable_restarts`,
//! uptime, status) is each worker's CPU seconds, resident memory, restarts,
//! restarts after a short run, uptime and state. nginx's reading / writing /
//! waiting split is not kept by the workers, and so is not here.

use ringmaster_engine::stats::CountersSnapshot;

use super::exposition::{Exposition, Kind};
use super::procfs::ProcStat;
use crate::stats_line::{state_name, Routing, WorkerRow, STATE_NAMES};

/// What the master counts itself, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MasterCounts {
    /// Connections the master accepted (`rr`).
    pub accepted: u64,
    /// Connections dealt to a worker's lane, re-deals included.
    pub handed_over: u64,
    /// Connections dealt again: declined by a full worker, or left
    /// unacknowledged by a worker that exited.
    pub rerouted: u64,
    /// Connections held because no worker was ready.
    pub held: u64,
    /// Connections the master took from the queue of a stalled or full worker
    /// (`reuseport --steer load`) to hand to another.
    pub rescued: u64,
    /// Connections answered `503`: no worker could take them.
    pub refused: u64,
    /// Batches workers acknowledged (in their shared slots).
    pub acks: u64,
    /// Messages workers sent to wake the master, which waited for their acks.
    pub ack_wakes: u64,
    /// Batches the kernel refused to pass to a live worker for now
    /// (`ENOBUFS`, `ENOMEM`, `ETOOMANYREFS`) and the master sent again.
    pub hand_off_retries: u64,
    /// Rolling reloads begun.
    pub reloads: u64,
    /// Binary upgrades begun.
    pub upgrades: u64,
    /// Binary upgrades that failed (this master served on).
    pub upgrades_failed: u64,
}

/// Everything a page shows, read at one moment.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// The program's name (`ringmaster`, or a program of your own's): the
    /// `program` label of `ringmaster_info` alone, the one series a
    /// dashboard joins on, as Prometheus advises for a label every series
    /// would share; the families keep their names in every program.
    pub program: &'a str,
    /// The balancing mode.
    pub mode: &'a str,
    /// How the kernel's choice among the mode's own listeners is steered
    /// (`reuseport`: `load` or `hash`).
    pub steer: Option<&'a str>,
    /// The kernel interface the loops run on.
    pub backend: &'a str,
    /// This build's version.
    pub version: &'a str,
    /// Workers the master is asked to run.
    pub workers_wanted: usize,
    /// `--max-conns`.
    pub max_conns: u64,
    /// A stop has begun (the drain delay included).
    pub stopping: bool,
    /// The drain delay is under way: every worker is a lame duck.
    pub lame_duck: bool,
    /// The master's counts.
    pub counts: MasterCounts,
    /// Connections held now, waiting for a ready worker.
    pub held: u64,
    /// Fds in the lanes now: queued, in flight, or not yet acknowledged.
    pub queued_fds: u64,
    /// The master process.
    pub process: Option<ProcStat>,
    /// When the master started, in seconds since the Unix epoch.
    pub start_time: f64,
    /// The master's open fds.
    pub open_fds: Option<u64>,
    /// The master's fd limit.
    pub max_fds: Option<u64>,
    /// What the workers removed by a scale-down counted.
    pub retired: CountersSnapshot,
    /// Every worker, as the stats line shows it.
    pub workers: &'a [WorkerRow],
}

/// The page for `snapshot`.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut page = Exposition::with_capacity(4096 + s.workers.len() * 2048);
    page.family(
        "ringmaster_info",
        Kind::Gauge,
        "The program (ringmaster, or one of your own on the library), the balancing mode (reuseport: and how it \
         is steered, load or hash) and the kernel interface the event loops run on.",
    );
    let (program, mode, backend, version) =
        (("program", s.program), ("mode", s.mode), ("backend", s.backend), ("version", s.version));
    match s.steer {
        Some(steer) => page.sample(&[program, mode, ("steer", steer), backend, version], 1u64),
        None => page.sample(&[program, mode, backend, version], 1u64),
    }
    page.single(
        "ringmaster_workers_configured",
        Kind::Gauge,
        "Workers the master runs (--workers, scale).",
        s.workers_wanted,
    );
    page.single(
        "ringmaster_max_connections_per_worker",
        Kind::Gauge,
        "Connections one worker holds at most (--max-conns).",
        s.max_conns,
    );
    page.single(
        "ringmaster_stopping",
        Kind::Gauge,
        "1 once a graceful stop has begun (the drain delay included).",
        s.stopping,
    );
    page.single(
        "ringmaster_lame_duck",
        Kind::Gauge,
        "1 while the drain delay runs: every worker serves, and its health path answers 503.",
        s.lame_duck,
    );
    master_counts(&mut page, s);
    retired(&mut page, &s.retired);
    master_process(&mut page, s);
    workers(&mut page, s.workers);
    page.finish()
}

fn master_counts(page: &mut Exposition, s: &Snapshot<'_>) {
    let c = &s.counts;
    let counters: [(&str, &str, u64); 12] = [
        (
            "accepted",
            "Connections the master accepted (rr, least; in shared and reuseport modes the workers accept).",
            c.accepted,
        ),
        ("handed_over", "Connections dealt to a worker over its channel, re-deals included.", c.handed_over),
        (
            "rerouted",
            "Connections dealt again: declined by a full worker, not acknowledged by one that exited, \
             or queued for one that stopped keeping up or retired.",
            c.rerouted,
        ),
        (
            "rescued",
            "Connections the master took from the queue of a stalled or full worker (reuseport --steer load; \
             reuseport at a stop, from a worker that stands still) and dealt to another.",
            c.rescued,
        ),
        ("held", "Connections held because no worker could take them yet (none ready, or all lagging).", c.held),
        ("refused", "Connections answered 503 because no worker could take them.", c.refused),
        ("acks", "Batches of connections workers acknowledged.", c.acks),
        ("ack_wakes", "Messages workers sent to wake the master, which waited for their acks.", c.ack_wakes),
        (
            "hand_off_retries",
            "Batches the kernel refused to pass to a live worker for now (ENOBUFS, ENOMEM, ETOOMANYREFS), sent again.",
            c.hand_off_retries,
        ),
        ("reloads", "Rolling reloads begun.", c.reloads),
        ("upgrades", "Binary upgrades begun.", c.upgrades),
        ("upgrades_failed", "Binary upgrades that failed; this master served on.", c.upgrades_failed),
    ];
    for (name, help, value) in counters {
        let family = match name {
            "acks" | "ack_wakes" | "hand_off_retries" | "reloads" | "upgrades" | "upgrades_failed" => {
                format!("ringmaster_master_{name}_total")
            }
            _ => format!("ringmaster_master_connections_{name}_total"),
        };
        page.single(&family, Kind::Counter, help, value);
    }
    page.single(
        "ringmaster_master_connections_held",
        Kind::Gauge,
        "Connections the master holds now, waiting for a ready worker.",
        s.held,
    );
    page.single(
        "ringmaster_master_queued_fds",
        Kind::Gauge,
        "Connections in the workers' lanes now: queued, in flight, or sent and not yet acknowledged.",
        s.queued_fds,
    );
}

/// What scaled-away workers counted: added to the per-worker series, the
/// sums never go backwards when a worker is removed.
fn retired(page: &mut Exposition, retired: &CountersSnapshot) {
    let counters: [(&str, &str, u64); 4] = [
        ("connections_accepted", "Connections taken by workers since removed by a scale-down.", retired.accepted),
        ("connections_rejected", "Connections refused by workers since removed by a scale-down.", retired.rejected),
        ("requests", "Requests answered by workers since removed by a scale-down.", retired.requests),
        ("fd_limit_hits", "Open-file limit hits of workers since removed by a scale-down.", retired.fd_limit_hits),
    ];
    for (name, help, value) in counters {
        page.single(&format!("ringmaster_retired_{name}_total"), Kind::Counter, help, value);
    }
}

fn master_process(page: &mut Exposition, s: &Snapshot<'_>) {
    if let Some(p) = s.process {
        page.single(
            "process_cpu_seconds_total",
            Kind::Counter,
            "The master's user and system CPU time, in seconds.",
            p.cpu_seconds,
        );
        page.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "The master's resident memory, in bytes.",
            p.rss_bytes,
        );
        page.single(
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "The master's virtual memory, in bytes.",
            p.virtual_bytes,
        );
    }
    page.single(
        "process_start_time_seconds",
        Kind::Gauge,
        "When the master started, in seconds since the Unix epoch.",
        s.start_time,
    );
    if let Some(open) = s.open_fds {
        page.single("process_open_fds", Kind::Gauge, "The master's open file descriptors.", open);
    }
    if let Some(max) = s.max_fds {
        page.single("process_max_fds", Kind::Gauge, "The master's open-file limit.", max);
    }
}

fn workers(page: &mut Exposition, rows: &[WorkerRow]) {
    let ids: Vec<(String, String)> =
        rows.iter().map(|w| (w.id.to_string(), w.cpu.map_or_else(|| "none".to_string(), |c| c.to_string()))).collect();
    let labels = |i: usize| [("worker", ids[i].0.as_str()), ("cpu", ids[i].1.as_str())];
    type Field = fn(&WorkerRow) -> super::exposition::Value;
    let families: [(&str, Kind, &str, Field); 12] = [
        ("connections_accepted_total", Kind::Counter, "Connections the worker took, over its restarts.", |w| {
            w.counts.accepted.into()
        }),
        ("connections_rejected_total", Kind::Counter, "Connections refused because --max-conns were open.", |w| {
            w.counts.rejected.into()
        }),
        ("connections_live", Kind::Gauge, "Connections open now.", |w| w.counts.live.into()),
        ("requests_total", Kind::Counter, "Requests answered (error replies included), over its restarts.", |w| {
            w.counts.requests.into()
        }),
        ("fd_limit_hits_total", Kind::Counter, "Times the worker found itself at its open-file limit.", |w| {
            w.counts.fd_limit_hits.into()
        }),
        (
            "idle_reclaimed_total",
            Kind::Counter,
            "Idle keep-alive connections the worker closed, longest idle first, to make room for new ones at --max-conns.",
            |w| w.counts.idle_reclaimed.into(),
        ),
        (
            "handler_panics_total",
            Kind::Counter,
            "Times the application's handler panicked: its request got 500 and its connection closed, the worker served on.",
            |w| w.counts.handler_panics.into(),
        ),
        ("restarts_total", Kind::Counter, "Times the worker was restarted after its process exited.", |w| {
            w.restarts.into()
        }),
        (
            "unstable_restarts_total",
            Kind::Counter,
            "Restarts after a run shorter than 30 s (PM2's unstable_restarts).",
            |w| w.unstable_restarts.into(),
        ),
        ("uptime_seconds", Kind::Gauge, "Seconds since the worker's current process started.", |w| {
            (w.uptime_ms as f64 / 1000.0).into()
        }),
        (
            "lame_duck",
            Kind::Gauge,
            "1 when the master marked the worker a lame duck: its health path answers 503.",
            |w| w.lame_duck.into(),
        ),
        ("up", Kind::Gauge, "1 when the worker has a running process.", |w| w.running.into()),
    ];
    for (name, kind, help, field) in families {
        page.family(&format!("ringmaster_worker_{name}"), kind, help);
        for (i, w) in rows.iter().enumerate() {
            page.sample(&labels(i), field(w));
        }
    }
    page.family(
        "ringmaster_worker_state",
        Kind::Gauge,
        "The worker's state: 1 for the one it is in, 0 for the others.",
    );
    for (i, w) in rows.iter().enumerate() {
        let current = state_name(w.running, w.counts.state);
        for state in STATE_NAMES {
            let [worker, cpu] = labels(i);
            page.sample(&[worker, cpu, ("state", state)], state == current);
        }
    }
    routing(page, rows, &labels);
    let processes: Vec<(usize, ProcStat)> =
        rows.iter().enumerate().filter_map(|(i, w)| w.process.map(|p| (i, p))).collect();
    page.family(
        "ringmaster_worker_cpu_seconds_total",
        Kind::Counter,
        "The worker process's user and system CPU time, in seconds.",
    );
    for &(i, p) in &processes {
        page.sample(&labels(i), p.cpu_seconds);
    }
    page.family(
        "ringmaster_worker_capacity",
        Kind::Gauge,
        "Connections the worker's process can hold: --max-conns, or fewer when its open-file limit at start \
         allows fewer or it reached its open-file limit.",
    );
    for (i, w) in rows.iter().enumerate().filter(|(_, w)| w.running) {
        page.sample(&labels(i), w.counts.capacity);
    }
    page.family(
        "ringmaster_worker_resident_memory_bytes",
        Kind::Gauge,
        "The worker process's resident memory, in bytes.",
    );
    for &(i, p) in &processes {
        page.sample(&labels(i), p.rss_bytes);
    }
}

/// What the master's routing sees of each worker (`rr`, `least`): no
/// family at all in a mode whose workers accept.
fn routing<'a>(page: &mut Exposition, rows: &[WorkerRow], labels: &dyn Fn(usize) -> [(&'a str, &'a str); 2]) {
    let routed: Vec<(usize, Routing)> =
        rows.iter().enumerate().filter_map(|(i, w)| w.routing.map(|r| (i, r))).collect();
    if routed.is_empty() {
        return;
    }
    type Field = fn(&Routing) -> super::exposition::Value;
    let families: [(&str, &str, Field); 4] = [
        (
            "connections_unacknowledged",
            "Connections handed to the worker that it has not acknowledged yet (rr, least).",
            |r| r.unacked.into(),
        ),
        ("connections_queued", "Connections queued in the master for the worker, not sent yet (rr, least).", |r| {
            r.queued.into()
        }),
        (
            "lagging",
            "1 while the worker does not keep up (its batch unacknowledged past 20 ms, or its heartbeat stale): \
             it gets no new connections (rr, least).",
            |r| r.lagging.into(),
        ),
        (
            "ack_delay_seconds",
            "How long the worker has lately taken to acknowledge a batch handed to it, a peak average that \
             decays while it is handed nothing; least counts every 25 us of it as one more connection (rr, least).",
            |r| (r.ack_delay_us as f64 / 1e6).into(),
        ),
    ];
    for (name, help, field) in families {
        page.family(&format!("ringmaster_worker_{name}"), Kind::Gauge, help);
        for &(i, r) in &routed {
            page.sample(&labels(i), field(&r));
        }
    }
    page.family(
        "ringmaster_worker_passed_over_total",
        Kind::Counter,
        "Times a connection went to another worker, or was held, when by the mode's rule it was this one's \
         (rr: its turn; least: the least loaded) but it could not take one (stalled, full, declining, \
         draining), what was queued for it and dealt to another included (rr, least).",
    );
    for &(i, r) in &routed {
        page.sample(&labels(i), r.passed_over);
    }
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
