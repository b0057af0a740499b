//! The two balancing scenarios of issue 10, run once per mode after the
//! criterion groups, each a timed load ([`super::timed`]) whose numbers go
//! into a Markdown table:
//!
//! - **stalled**: 32 churn clients (one request per connection, 2 s
//!   timeout) for 8 s, once healthy and once with worker 2 stopped (SIGSTOP)
//!   from 2 s to 5 s: req/s of each, their ratio, client timeouts, p99;
//! - **unequal**: 16 clients pipelining 16 requests on kept connections beside
//!   16 churn clients, 8 s: req/s, p99 (all answers, and the churn clients'
//!   alone), timeouts;
//!
//! with Jain's index over the connections and the requests each worker took
//! (stats lines before and after).

use std::fmt::Write as _;
use std::time::Duration;

use super::fairness::{delta, jain};
use super::server::{Server, WorkerStats};
use super::timed::{run, Histogram, Mix, Outcome};

/// Length of each run.
const RUN: Duration = Duration::from_secs(8);
/// A request unanswered this long counts as a timeout (wrk's `--timeout 2s`).
const TIMEOUT: Duration = Duration::from_secs(2);
/// The stalled worker stops at this point of the run ...
const STOP_AT: Duration = Duration::from_secs(2);
/// ... and continues at this one.
const CONTINUE_AT: Duration = Duration::from_secs(5);

/// What one mode did in one run.
struct Measured {
    outcome: Outcome,
    /// Connections the stopped worker had open as it stopped.
    held: Option<u64>,
    conns_jain: Option<f64>,
    requests_jain: Option<f64>,
}

/// Runs `mix` against `server`, stopping `stall` (a pid) from [`STOP_AT`] to
/// [`CONTINUE_AT`] if given.
fn measure(server: &Server, mix: Mix, stall: Option<u32>) -> Result<Measured, String> {
    let before = server.stats().map_err(|e| e.to_string())?;
    let mut stopped = false;
    let mut continued = false;
    let mut held = None;
    let signal = |pid: u32, sig| {
        // SAFETY: kill(2) on a worker pid of our own server.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    };
    let result = run(server.addr, mix, RUN, TIMEOUT, |elapsed| {
        let Some(pid) = stall else { return };
        if !stopped && elapsed >= STOP_AT {
            stopped = true;
            signal(pid, libc::SIGSTOP);
            // Its last published count: what it can make wait.
            let stats = server.stats().unwrap_or_default();
            held = stats.iter().find(|w| w.pid == u64::from(pid)).map(|w| w.live);
        }
        if stopped && !continued && elapsed >= CONTINUE_AT {
            continued = true;
            signal(pid, libc::SIGCONT);
        }
    });
    if let Some(pid) = stall {
        signal(pid, libc::SIGCONT);
    }
    let outcome = result.map_err(|e| e.to_string())?;
    let after = server.stats().map_err(|e| e.to_string())?;
    let split = delta(&before, &after);
    let of = |get: fn(&WorkerStats) -> u64| split.iter().map(get).collect::<Vec<u64>>();
    Ok(Measured { outcome, held, conns_jain: jain(&of(|w| w.accepted)), requests_jain: jain(&of(|w| w.requests)) })
}

/// The second worker's pid (the one to stop).
fn second_worker(server: &Server) -> Result<u32, String> {
    let stats = server.stats().map_err(|e| e.to_string())?;
    stats.iter().find(|w| w.id == 2).map(|w| w.pid as u32).ok_or_else(|| "no worker 2".to_string())
}

fn ms(histogram: &Histogram, quantile: f64) -> String {
    histogram.quantile(quantile).map_or_else(|| "n/a".to_string(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
}

fn index(j: Option<f64>) -> String {
    j.map_or_else(|| "n/a".to_string(), |j| format!("{j:.3}"))
}

/// Both scenarios for every server; the Markdown report.
pub fn run_all(servers: &[&Server]) -> String {
    let mut text = String::from(
        "## Balancing scenarios\n\n\
         ### Stalled worker: 32 churn clients, 8 s, worker 2 stopped (SIGSTOP) from 2 s to 5 s\n\n\
         | mode | healthy req/s | stalled req/s | stalled/healthy | timeouts | held | p99 stalled | Jain (conns) | Jain (requests) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let churn = Mix { churn: 32, pipelined: 0, depth: 1 };
    for server in servers {
        let row = second_worker(server).and_then(|pid| {
            let healthy = measure(server, churn, None)?;
            let stalled = measure(server, churn, Some(pid))?;
            let (h, s) = (healthy.outcome.rps(), stalled.outcome.rps());
            Ok(format!(
                "| {} | {h:.0} | {s:.0} | {:.2} | {} | {} | {} | {} | {} |\n",
                server.label,
                s / h,
                stalled.outcome.timeouts,
                stalled.held.map_or_else(|| "n/a".to_string(), |n| n.to_string()),
                ms(&stalled.outcome.all(), 0.99),
                index(stalled.conns_jain),
                index(stalled.requests_jain)
            ))
        });
        let row = row.unwrap_or_else(|e| format!("| {} | failed: {e} | | | | | | | |\n", server.label));
        eprint!("{row}");
        text.push_str(&row);
    }
    text.push_str(
        "\n### Unequal connections: 16 clients pipelining 16 deep on kept connections + 16 churn clients, 8 s\n\n\
         | mode | req/s | p99 (all) | p99 (churn) | p99 (pipelined) | timeouts | Jain (conns) | Jain (requests) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let unequal = Mix { churn: 16, pipelined: 16, depth: 16 };
    for server in servers {
        let row = measure(server, unequal, None).map(|m| {
            let o = &m.outcome;
            format!(
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                server.label,
                o.rps(),
                ms(&o.all(), 0.99),
                ms(&o.churn, 0.99),
                ms(&o.pipelined, 0.99),
                o.timeouts,
                index(m.conns_jain),
                index(m.requests_jain)
            )
        });
        let row = row.unwrap_or_else(|e| format!("| {} | failed: {e} | | | | | | |\n", server.label));
        eprint!("{row}");
        text.push_str(&row);
    }
    let _ = writeln!(
        text,
        "\nTimeouts: requests unanswered after {} s (their connection is dropped and replaced); held: \
         the connections the stopped worker had open as it stopped (its last published count), which no \
         balancer can take back. Jain's index over what each worker took during the run (stats lines \
         before and after).",
        TIMEOUT.as_secs()
    );
    text
}
