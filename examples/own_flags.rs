//! A program of your own that takes ringmaster's flags (`--bind`, `--mode`,
//! `--workers`, limits, `ctl`), under its own name, with its own handler:
//! `--help` says `Usage: own_flags` and offers no `--body`, which only the
//! binary's fixed responder reads.
//!
//! `$CLUSTER_NAME` names the cluster after the parse (`Cluster::name`): its titles,
//! log lines and `ctl` then say that name.
//!
//! ```sh
//! cargo run --example own_flags -- --bind 127.0.0.1:8000 --workers 2
//! cargo run --example own_flags -- --help
//! curl http://127.0.0.1:8000/
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use ringmaster::{cli, Handler, Request, Response};

/// The handler: the path asked for, back.
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain");
        // An answer longer than --max-response turns into a 500, which the engine sends.
        let _ = writeln!(res, "own flags: {}", req.path());
    }
}

fn main() -> ExitCode {
    match cli::parse_program() {
        Err(code) => code,
        // `own_flags ctl PATH COMMAND` too: `serve` runs it, under the cluster's name.
        Ok(cluster) => match std::env::var("CLUSTER_NAME") {
            Ok(name) => cluster.name(name).serve(|| Echo),
            Err(_) => cluster.serve(|| Echo),
        },
    }
}
