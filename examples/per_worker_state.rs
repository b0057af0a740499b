//! Workers are processes and share no memory (the second lesson of Node's
//! cluster): each keeps its own request counter, and every answer says which
//! worker gave it, its pid and its own count.
//!
//! ```sh
//! cargo run --release --example per_worker_state
//! for i in 1 2 3 4; do curl -s http://127.0.0.1:8000/; done
//! ```
//! `$PORT`, `$MODE` (`rr` or `shared`) and `$WORKERS` change the defaults.

use std::fmt::Write as _;
use std::process::ExitCode;

use ringmaster::{available_cpus, worker_id, Cluster, Handler, Mode, Request, Response};

/// One worker's state: made once per worker process, never shared.
struct Counter {
    id: usize,
    pid: u32,
    served: u64,
}

impl Handler for Counter {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        self.served += 1;
        res.header("Content-Type", "text/plain");
        // Formatted straight into the response buffer: no allocation.
        let _ = writeln!(res, "worker {} (pid {}) has served {} requests", self.id, self.pid, self.served);
    }
}

fn main() -> ExitCode {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    let mode = if std::env::var("MODE").is_ok_and(|m| m == "shared") { Mode::Shared } else { Mode::RoundRobin };
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or_else(available_cpus);
    Cluster::new().bind(format!("127.0.0.1:{port}")).workers(workers).mode(mode).serve(|| Counter {
        id: worker_id().unwrap_or(0),
        pid: std::process::id(),
        served: 0,
    })
}
