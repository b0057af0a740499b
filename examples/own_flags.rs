//! A program of your own that takes ringmaster's flags (`--bind`, `--mode`,
//! `--workers`, limits, `ctl`), under its own name, with its own handler:
//! `--help` says `Usage: own_flags` and offers no `--body`, which only the
//! binary's fixed responder reads.
//!
//! ```sh
//! cargo run --example own_flags -- --bind 127.0.0.1:8000 --workers 2
//! cargo run --example own_flags -- --help
//! curl http://127.0.0.1:8000/
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use ringmaster::cli::{self, ProgramCommand};
use ringmaster::{Handler, Request, Response};

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
        Ok(ProgramCommand::Ctl(args)) => cli::ctl(&args),
        Ok(ProgramCommand::Serve(cluster)) => cluster.serve(|| Echo),
    }
}
