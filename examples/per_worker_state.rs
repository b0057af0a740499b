//! Workers are processes and share no memory (the second lesson of Node's
//! cluster): each keeps its own request counter, and every answer says which
//! worker gave it, its pid and its own count. They talk to the master in
//! lines of text, as Node's `process.send()` and `worker.send()` do: every
//! 1,000th request a worker reports its count (the master prints it), and
//! `ringmaster ctl PATH send reset` sets every worker's count back to 0.
//!
//! ```sh
//! CONTROL=/tmp/pws.sock cargo run --release --example per_worker_state
//! for i in 1 2 3 4; do curl -s http://127.0.0.1:8000/; done
//! ringmaster ctl /tmp/pws.sock send reset
//! ```
//! `$PORT`, `$MODE` (`rr` or `shared`), `$WORKERS` and `$CONTROL` (the
//! control socket's path) change the defaults. With `$REPORT_PANICS` set,
//! the master's hook panics on each report instead of printing it: in a
//! build that unwinds (without `--release`, whose profile aborts) the
//! report is lost, said, and the master serves on.

use std::fmt::Write as _;
use std::process::ExitCode;

use ringmaster::{available_cpus, cli, send_to_master, worker_id, Cluster, Handler, Mode, Request, Response};

/// How often a worker reports its count to the master, in requests.
const REPORT_EVERY: u64 = 1000;

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
        if self.served % REPORT_EVERY == 0 {
            let mut line = [0u8; 64];
            let mut cursor = std::io::Cursor::new(&mut line[..]);
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("served {}", self.served));
            let len = cursor.position() as usize;
            // A master that is gone is not this handler's problem: the worker drains anyway.
            let _ = std::str::from_utf8(&line[..len]).map(send_to_master);
        }
    }

    fn on_message(&mut self, message: &str) {
        if message == "reset" {
            self.served = 0;
        }
    }
}

/// What `--help` says: the example takes no arguments, its settings from the environment.
const ABOUT: &str = "Each worker counts its own requests and says so: processes share no memory.\n\
                     Takes no arguments; the environment sets:\n  \
                     PORT           the port on 127.0.0.1 [default: 8000]\n  \
                     MODE           rr or shared [default: rr]\n  \
                     WORKERS        worker processes [default: one per CPU]\n  \
                     CONTROL        a control socket's path (`ctl PATH send reset`) [default: none]\n  \
                     REPORT_PANICS  set: the master's hook panics on each report";

fn main() -> ExitCode {
    // `--help` says the above; any argument is refused (it would be ignored).
    if let Err(code) = cli::parse_no_arguments(ABOUT) {
        return code;
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    let mode = if std::env::var("MODE").is_ok_and(|m| m == "shared") { Mode::Shared } else { Mode::RoundRobin };
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or_else(available_cpus);
    let panics = std::env::var_os("REPORT_PANICS").is_some();
    let mut cluster = Cluster::new()
        .bind(format!("127.0.0.1:{port}"))
        .workers(workers)
        .mode(mode)
        // In the master: what each worker reports.
        .on_worker_message(move |id, text| {
            if panics {
                panic!("per_worker_state: worker {id}'s report {text:?} is not wanted");
            }
            eprintln!("per_worker_state: worker {id} reports {text}");
        });
    if let Ok(path) = std::env::var("CONTROL") {
        cluster = cluster.control(path);
    }
    cluster.serve(|| Counter { id: worker_id().unwrap_or(0), pid: std::process::id(), served: 0 })
}
