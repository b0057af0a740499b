//! The command line of a program that takes no arguments, its settings
//! from elsewhere (the environment, as the examples' `$PORT`): `--help`
//! says what it is, and any argument is refused, rather than the program
//! serving whatever it was given.

use std::ffi::OsString;
use std::process::ExitCode;

use super::{program_name, said};

/// Parses this process's arguments for a program that takes none: `--help`
/// (or `-h`) prints `about` and `Usage: NAME` (the program's name, its
/// `argv[0]`'s file name) and gives a success code; any argument is
/// refused in one log line (`unexpected argument '--bind' found; usage:
/// NAME; ...`) with code 2. Without it such a program serves whatever it
/// is given: until 2026-12-08 the examples served on `--help`.
///
/// ```no_run
/// use ringmaster::{cli, Cluster, Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
///         res.body(b"hello\n");
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     if let Err(code) = cli::parse_no_arguments("Says hello on port $PORT (8000).") {
///         return code;
///     }
///     let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
///     Cluster::new().bind(format!("127.0.0.1:{port}")).serve(|| Hello)
/// }
/// ```
pub fn parse_no_arguments(about: &str) -> Result<(), ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = program_name(&args);
    let mut command =
        clap::Command::new(name.clone()).bin_name(name).about(about.to_string()).disable_version_flag(true);
    let parsed = command.try_get_matches_from_mut(&args).map_err(|e| e.format(&mut command));
    said(parsed).map(drop)
}
