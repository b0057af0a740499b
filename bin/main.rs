//! `ringmaster`: the command line over the library, answering every request
//! with `--body` (Node's classic cluster example) unless told otherwise.

use std::process::ExitCode;

use ringmaster::cli::{self, Command};
use ringmaster::FixedBody;

fn main() -> ExitCode {
    match cli::parse() {
        Err(code) => code,
        Ok(Command::Ctl(args)) => cli::ctl(&args),
        Ok(Command::Serve { cluster, body }) => cluster.serve(move || FixedBody::new(body)),
    }
}
