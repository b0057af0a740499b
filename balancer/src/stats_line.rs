//! The one-line JSON the master prints on `SIGUSR1` and on exit.

use std::fmt::Write as _;

use crate::bpf::program::{AVAILABLE_MAX, STALLED};
use crate::modes::SteerView;
use ringmaster_engine::stats::{CountersSnapshot, STATE_DRAINING, STATE_READY, STATE_STARTING, STATE_STOPPED};

use crate::metrics::procfs::ProcStat;

/// Every state a worker can be shown in.
pub const STATE_NAMES: [&str; 5] = ["starting", "ready", "draining", "stopped", "exited"];

/// One worker as the stats line shows it.
#[derive(Clone, Copy, Debug)]
pub struct WorkerRow {
    /// Worker id, 1-based.
    pub id: usize,
    /// The worker's latest process.
    pub pid: Option<u32>,
    /// That process is still running.
    pub running: bool,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Its counters.
    pub counts: CountersSnapshot,
    /// Times it has been restarted.
    pub restarts: u32,
    /// Milliseconds since its current process started.
    pub uptime_ms: u64,
    /// The master marked its process a lame duck: its health path answers `503`.
    pub lame_duck: bool,
    /// Restarts after a run shorter than the backoff's healthy uptime.
    pub unstable_restarts: u32,
    /// Requests per second over the last second.
    pub req_per_s: f64,
    /// Its process's CPU time and memory, from `/proc`.
    pub process: Option<ProcStat>,
    /// What the master's routing sees of its running process (all 0 and
    /// false but `passed_over` while none runs), when the master hands
    /// connections over (`rr`, `least`): shown as `"unacked"`, `"queued"`,
    /// `"lagging"`, `"passed_over"` and `"ack_delay_us"`. Absent otherwise.
    pub routing: Option<Routing>,
    /// What the steering program sees of it (`reuseport --steer load`): its
    /// load, shown as `"steer"`, a number, `"stalled"` or `"unavailable"`;
    /// `"steered"`, the connections sent to it; `"waiting"`, those not
    /// accepted yet; `"rescued"`, those the master took from its queue
    /// while it was stalled and dealt to another. Absent otherwise.
    pub steer: Option<SteerView>,
}

/// What the master's routing sees of one worker process (`rr`, `least`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// Connections handed to it that it has not acknowledged yet.
    pub unacked: u64,
    /// Connections queued in the master for it, not sent yet.
    pub queued: u64,
    /// It does not keep up (a batch unacknowledged past the grace, or a
    /// stale heartbeat): it gets no new connections until it does.
    pub lagging: bool,
    /// Times a connection went to another worker, or was held, when by the
    /// mode's rule it was this worker's (`rr`: its turn; `least`: it was the
    /// least loaded, had it kept up) but it could not take one (stalled, full,
    /// declining, draining); what was queued for it and then dealt to
    /// another counts too. Over the worker's processes, as its other counts.
    /// 0 means the split is the mode's own.
    pub passed_over: u64,
    /// How long it has lately taken to acknowledge a batch handed to it,
    /// in whole microseconds (the estimate `least` counts as one more
    /// connection for every 25 µs; it decays toward 0 while nothing is
    /// handed to it).
    pub ack_delay_us: u64,
}

/// Formats the stats line (no trailing newline); `steer` how the kernel's
/// choice of listener is steered (`reuseport`: `load` or `hash`), `backend`
/// the kernel interface the loops run on, `refused` counts the connections the master
/// answered with `503` because no worker could take them, `retired` what the
/// workers removed by a scale-down counted (added to the rows, the totals
/// never go backwards).
pub fn stats_json(
    (mode, steer): (&str, Option<&str>),
    backend: &str,
    refused: u64,
    retired: &CountersSnapshot,
    rows: &[WorkerRow],
) -> String {
    let mut out = String::with_capacity(160 + rows.len() * 160);
    let _ = write!(out, "{{\"mode\":\"{mode}\",");
    if let Some(steer) = steer {
        let _ = write!(out, "\"steer\":\"{steer}\",");
    }
    let _ = write!(
        out,
        "\"backend\":\"{backend}\",\"refused\":{refused},\"retired\":{{\"accepted\":{},\"requests\":{},\"rejected\":{}}},\"workers\":[",
        retired.accepted, retired.requests, retired.rejected
    );
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"id\":{},\"pid\":{},\"cpu\":{},\"accepted\":{},\"requests\":{},\"live\":{},\"rejected\":{},\"idle_reclaimed\":{},\"handler_panics\":{},\"capacity\":{},\"state\":\"{}\",\"restarts\":{},\"uptime_ms\":{},\"lame_duck\":{},\"req_per_s\":{:.1},\"rss_bytes\":{},\"cpu_seconds\":{}}}",
            row.id,
            json_option(row.pid),
            json_option(row.cpu),
            row.counts.accepted,
            row.counts.requests,
            row.counts.live,
            row.counts.rejected,
            row.counts.idle_reclaimed,
            row.counts.handler_panics,
            json_option(row.running.then_some(row.counts.capacity)),
            state_name(row.running, row.counts.state),
            row.restarts,
            row.uptime_ms,
            row.lame_duck,
            row.req_per_s,
            json_option(row.process.map(|p| p.rss_bytes)),
            json_option(row.process.map(|p| format!("{:.2}", p.cpu_seconds))),
        );
        if let Some(routing) = row.routing {
            out.pop();
            let _ = write!(
                out,
                ",\"unacked\":{},\"queued\":{},\"lagging\":{},\"passed_over\":{},\"ack_delay_us\":{}}}",
                routing.unacked, routing.queued, routing.lagging, routing.passed_over, routing.ack_delay_us
            );
        }
        if let Some(steer) = row.steer {
            out.pop();
            match steer.load {
                load if load > AVAILABLE_MAX => out.push_str(",\"steer\":\"unavailable\""),
                load if load >= STALLED => out.push_str(",\"steer\":\"stalled\""),
                load => {
                    let _ = write!(out, ",\"steer\":{load}");
                }
            }
            let _ = write!(
                out,
                ",\"steered\":{},\"waiting\":{},\"rescued\":{}}}",
                steer.sent, steer.waiting, steer.rescued
            );
        }
    }
    out.push_str("]}");
    out
}

fn json_option<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// The name of a worker's state (one of [`STATE_NAMES`]): `exited` when it
/// has no running process.
pub fn state_name(running: bool, state: u32) -> &'static str {
    if !running {
        return "exited";
    }
    match state {
        STATE_STARTING => "starting",
        STATE_READY => "ready",
        STATE_DRAINING => "draining",
        STATE_STOPPED => "stopped",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_documented_keys() {
        let counts = CountersSnapshot {
            accepted: 10,
            requests: 25,
            live: 3,
            capacity: 100,
            state: STATE_READY,
            ..Default::default()
        };
        let process = ProcStat { cpu_seconds: 0.126, rss_bytes: 4096, ..ProcStat::default() };
        let rows = [
            WorkerRow {
                id: 1,
                pid: Some(1234),
                running: true,
                cpu: Some(0),
                counts,
                restarts: 0,
                uptime_ms: 5,
                lame_duck: false,
                unstable_restarts: 0,
                req_per_s: 12.26,
                process: Some(process),
                routing: None,
                steer: None,
            },
            WorkerRow {
                id: 2,
                pid: None,
                running: false,
                cpu: None,
                counts: CountersSnapshot::default(),
                restarts: 1,
                uptime_ms: 0,
                lame_duck: true,
                unstable_restarts: 1,
                req_per_s: 0.0,
                process: None,
                routing: None,
                steer: None,
            },
        ];
        let retired =
            CountersSnapshot { accepted: 7, requests: 9, rejected: 1, fd_limit_hits: 2, ..Default::default() };
        assert_eq!(
            stats_json(("rr", None), "uring", 0, &retired, &rows),
            "{\"mode\":\"rr\",\"backend\":\"uring\",\"refused\":0,\"retired\":{\"accepted\":7,\"requests\":9,\"rejected\":1},\"workers\":[\
             {\"id\":1,\"pid\":1234,\"cpu\":0,\"accepted\":10,\"requests\":25,\"live\":3,\"rejected\":0,\"idle_reclaimed\":0,\"handler_panics\":0,\"capacity\":100,\"state\":\"ready\",\"restarts\":0,\"uptime_ms\":5,\"lame_duck\":false,\"req_per_s\":12.3,\"rss_bytes\":4096,\"cpu_seconds\":0.13},\
             {\"id\":2,\"pid\":null,\"cpu\":null,\"accepted\":0,\"requests\":0,\"live\":0,\"rejected\":0,\"idle_reclaimed\":0,\"handler_panics\":0,\"capacity\":null,\"state\":\"exited\",\"restarts\":1,\"uptime_ms\":0,\"lame_duck\":true,\"req_per_s\":0.0,\"rss_bytes\":null,\"cpu_seconds\":null}]}"
        );
        let view = |load| Some(SteerView { load, sent: 40, waiting: 2, rescued: 3 });
        let steered = [WorkerRow { steer: view(7), ..rows[0] }, WorkerRow { steer: view(u32::MAX), ..rows[1] }];
        let line = stats_json(("reuseport", Some("load")), "epoll", 0, &CountersSnapshot::default(), &steered);
        assert!(line.starts_with("{\"mode\":\"reuseport\",\"steer\":\"load\",\"backend\":\"epoll\","), "{line}");
        assert!(
            line.contains("\"cpu_seconds\":0.13,\"steer\":7,\"steered\":40,\"waiting\":2,\"rescued\":3}"),
            "{line}"
        );
        assert!(
            line.contains(
                "\"cpu_seconds\":null,\"steer\":\"unavailable\",\"steered\":40,\"waiting\":2,\"rescued\":3}]}"
            ),
            "{line}"
        );
        let stalled = [WorkerRow { steer: view(STALLED + 3), ..rows[0] }];
        assert!(stats_json(("reuseport", Some("load")), "epoll", 0, &CountersSnapshot::default(), &stalled)
            .contains(",\"steer\":\"stalled\","));
        let lagging = Routing { unacked: 4, queued: 1, lagging: true, passed_over: 7, ack_delay_us: 250 };
        let routed = [WorkerRow { routing: Some(lagging), ..rows[0] }];
        let line = stats_json(("least", None), "uring", 0, &CountersSnapshot::default(), &routed);
        assert!(
            line.contains("\"cpu_seconds\":0.13,\"unacked\":4,\"queued\":1,\"lagging\":true,\"passed_over\":7,\"ack_delay_us\":250}]}"),
            "{line}"
        );
    }
}
