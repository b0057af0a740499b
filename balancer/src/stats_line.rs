//! The one-line JSON the master prints on `SIGUSR1` and on exit.

use std::fmt::Write as _;

use crate::bpf::program::AVAILABLE_MAX;
use ringmaster_engine::stats::{CountersSnapshot, STATE_DRAINING, STATE_READY, STATE_STARTING, STATE_STOPPED};

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
    /// The load the steering program sees for it (`reuseport --steer load`):
    /// shown as `"steer"`, a number or `"unavailable"`; absent otherwise.
    pub steer: Option<u32>,
}

/// Formats the stats line (no trailing newline); `backend` is the kernel
/// interface the loops run on, `refused` counts the connections the master
/// answered with `503` because no worker could take them.
pub fn stats_json(mode: &str, backend: &str, refused: u64, rows: &[WorkerRow]) -> String {
    let mut out = String::with_capacity(96 + rows.len() * 160);
    let _ = write!(out, "{{\"mode\":\"{mode}\",\"backend\":\"{backend}\",\"refused\":{refused},\"workers\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"id\":{},\"pid\":{},\"cpu\":{},\"accepted\":{},\"requests\":{},\"live\":{},\"rejected\":{},\"state\":\"{}\",\"restarts\":{},\"uptime_ms\":{}}}",
            row.id,
            json_option(row.pid),
            json_option(row.cpu),
            row.counts.accepted,
            row.counts.requests,
            row.counts.live,
            row.counts.rejected,
            state_name(row.running, row.counts.state),
            row.restarts,
            row.uptime_ms,
        );
        if let Some(load) = row.steer {
            out.pop();
            match load {
                load if load > AVAILABLE_MAX => out.push_str(",\"steer\":\"unavailable\"}"),
                load => {
                    let _ = write!(out, ",\"steer\":{load}}}");
                }
            }
        }
    }
    out.push_str("]}");
    out
}

fn json_option<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn state_name(running: bool, state: u32) -> &'static str {
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
        let counts = CountersSnapshot { accepted: 10, requests: 25, live: 3, state: STATE_READY, ..Default::default() };
        let rows = [
            WorkerRow {
                id: 1,
                pid: Some(1234),
                running: true,
                cpu: Some(0),
                counts,
                restarts: 0,
                uptime_ms: 5,
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
                steer: None,
            },
        ];
        assert_eq!(
            stats_json("rr", "uring", 0, &rows),
            "{\"mode\":\"rr\",\"backend\":\"uring\",\"refused\":0,\"workers\":[\
             {\"id\":1,\"pid\":1234,\"cpu\":0,\"accepted\":10,\"requests\":25,\"live\":3,\"rejected\":0,\"state\":\"ready\",\"restarts\":0,\"uptime_ms\":5},\
             {\"id\":2,\"pid\":null,\"cpu\":null,\"accepted\":0,\"requests\":0,\"live\":0,\"rejected\":0,\"state\":\"exited\",\"restarts\":1,\"uptime_ms\":0}]}"
        );
        let steered = [WorkerRow { steer: Some(7), ..rows[0] }, WorkerRow { steer: Some(u32::MAX), ..rows[1] }];
        let line = stats_json("reuseport", "epoll", 0, &steered);
        assert!(line.contains("\"uptime_ms\":5,\"steer\":7}"), "{line}");
        assert!(line.contains("\"uptime_ms\":0,\"steer\":\"unavailable\"}]}"), "{line}");
    }
}
