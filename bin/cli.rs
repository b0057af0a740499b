//! The `ringmaster` command line: its flags, parsed into a [`Cluster`] (or a
//! `ctl` request). The binary is this plus a [`crate::FixedBody`] handler;
//! a program of your own with its own handler takes the same flags but the
//! binary's body ([`parse_program`]), under its own name; one that takes no
//! arguments answers `--help` and refuses the rest ([`parse_no_arguments`]).
//! The master re-executes the program for each worker, which parses the same
//! flags again.

mod flags;
mod no_arguments;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ringmaster_balancer::title::{ProcessNames, BINARY_NAME};

pub(crate) use self::flags::parse_health_path;
use self::flags::ClusterFlags;
pub use self::no_arguments::parse_no_arguments;
pub use crate::ctl::{ctl, CtlArgs};
use crate::{body_file, escapes, usage_error, Cluster};

/// The most `--max-conns` and `--max-header` take (the library's settings too).
pub const MOST_CONNS_OR_HEADER: i64 = 1_048_576;
/// The least `--max-header` takes (the library's `max_header` too).
pub const LEAST_HEADER: i64 = 256;

/// Node's cluster at the limit of Linux: a master balancing connections over
/// pinned io_uring worker processes, each an HTTP/1.1 responder.
#[derive(Debug, Parser)]
// `bin_name`: a worker's argv[0] is its title, which usage lines must not show.
#[command(name = "ringmaster", bin_name = "ringmaster", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<SubCommand>,

    #[command(flatten)]
    cluster: ClusterFlags,

    /// The response body. Backslash escapes: `\n` newline, `\r` carriage
    /// return, `\t` tab, `\\` backslash, `\xHH` the byte 0xHH; any other
    /// backslash is an error [default: "hello world\n"].
    // clap would quote the default as "hello world\\n": the line above says it instead.
    #[arg(long, default_value = r"hello world\n", hide_default_value = true, value_parser = parse_body)]
    body: Body,

    /// The response body, this file's bytes as they are (no escapes), instead
    /// of `--body`: each worker reads it as it starts, so `reload` serves what
    /// the file holds then. For a body longer than an argument may be (128 KiB)
    /// [default: none: `--body`].
    #[arg(long, value_name = "PATH", conflicts_with = "body")]
    body_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SubCommand {
    /// Send a command to a running master's control socket and print the
    /// reply; `status --table` and `top` draw it for people.
    Ctl(CtlArgs),
}

/// `--body` with its escapes replaced.
#[derive(Clone, Debug)]
struct Body(Vec<u8>);

fn parse_body(text: &str) -> Result<Body, String> {
    escapes::unescape(text).map(Body)
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve: the cluster, and the `--body` every request gets.
    Serve {
        /// The cluster the flags describe.
        cluster: Box<Cluster>,
        /// `--body`, escapes replaced.
        body: Vec<u8>,
    },
    /// `ringmaster ctl PATH COMMAND...`.
    Ctl(CtlArgs),
}

/// Parses this process's arguments as the `ringmaster` binary's. `--help`
/// and `--version` print and give a success code; a bad command line prints
/// one line and gives code 2.
pub fn parse() -> Result<Command, ExitCode> {
    // Captured once: the master's title overwrites the arguments in place, and
    // workers are given this copy.
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli: Cli = parse_with(Cli::command(), &args)?;
    if let Some(SubCommand::Ctl(ctl)) = cli.command {
        return Ok(Command::Ctl(ctl));
    }
    let body = match &cli.body_file {
        None => cli.body.0.clone(),
        Some(path) => body_file::for_this_process(path).map_err(|e| {
            ringmaster_balancer::log!(error: "{e}");
            // A worker that cannot read it fails as a crash would (restarted
            // with the back-off); the master checked it before starting any.
            ExitCode::from(1)
        })?,
    };
    // Titled `ringmaster` under any file name: a copy of the binary
    // (`/tmp/rm-new`, a benchmark's base) is found as the binary.
    let cluster = cli.cluster.cluster(&args).name(BINARY_NAME);
    Ok(Command::Serve { cluster: Box::new(cluster), body })
}

/// The command line of a program with its own handler: the binary's flags
/// but `--body` and `--body-file`, which only the binary's responder reads.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
struct ProgramCli {
    #[command(subcommand)]
    command: Option<SubCommand>,

    #[command(flatten)]
    cluster: ClusterFlags,
}

/// Parses this process's arguments for a program of your own with its own
/// handler: the binary's flags but `--body` and `--body-file`, its usage
/// lines, errors (log lines `NAME[PID]:`) and `ctl` (`NAME ctl: ...`,
/// `NAME top:`) under the program's own name (its `argv[0]`'s file name, as
/// its processes' titles, or the one its cluster is given with
/// [`Cluster::name`]), and no `--version` (ringmaster's would not be the
/// program's). `--help` prints and gives a success code; a bad command line
/// prints one line and gives code 2.
///
/// The cluster it gives is served as any: `NAME ctl PATH COMMAND...` too, for
/// which [`Cluster::serve`] sends the command to a running master's control
/// socket and prints its reply instead of serving. So a name given to the
/// cluster here, after the parse, is the one its `ctl` says (until
/// 2026-12-08 a `ctl` was a separate command that never saw the cluster,
/// and said the file name).
///
/// ```no_run
/// use ringmaster::{cli, Handler, Request, Response};
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
///     match cli::parse_program() {
///         Err(code) => code,
///         // `myapp ctl PATH status` says `myapp ctl: ...` whatever the file's name.
///         Ok(cluster) => cluster.name("myapp").serve(|| Hello),
///     }
/// }
/// ```
pub fn parse_program() -> Result<Cluster, ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = program_name(&args);
    let command = ProgramCli::command()
        // Not this struct's doc, nor ringmaster's: the program says what it is.
        .about(None::<&str>)
        .long_about(None::<&str>)
        .name(name.clone())
        .bin_name(name.clone())
        .mut_arg("max_response", |arg| arg.help("Largest response body the handler may write, in bytes (`500` beyond)"))
        .mut_arg("control", |arg| {
            arg.help(format!(
                "Create a control socket (mode 0600) at this path: `status`, `reload`, `scale N`, `upgrade`, \
                 `send TEXT`, `stop`; see `{name} ctl` [default: none]"
            ))
        });
    let cli: ProgramCli = parse_with(command, &args)?;
    let cluster = cli.cluster.cluster(&args);
    Ok(match cli.command {
        Some(SubCommand::Ctl(ctl)) => cluster.run_ctl(ctl),
        None => cluster,
    })
}

/// `args` parsed by `command` into `T`, whose flags are [`ClusterFlags`] and
/// more: `--help` printed (a success code), an error said in one line (code 2).
fn parse_with<T: FromArgMatches + HasClusterFlags>(
    mut command: clap::Command,
    args: &[OsString],
) -> Result<T, ExitCode> {
    let parsed = command
        .try_get_matches_from_mut(args)
        .and_then(|matches| T::from_arg_matches(&matches))
        .map_err(|e| e.format(&mut command));
    let cli = said(parsed)?;
    if cli.cluster_flags().steer_without_reuseport() {
        // A conflict clap cannot state (with a mode's default value): told as clap tells its own.
        let e = command.error(ErrorKind::ArgumentConflict, "--steer applies to --mode reuseport only");
        ringmaster_balancer::log!(error: "{}", usage_error::one_line(&e.to_string()));
        return Err(ExitCode::from(2));
    }
    Ok(cli)
}

/// A program's name, from its `argv[0]` (in a worker its title, `NAME:
/// worker N`: the same name), set as its log lines' from now on, so that a
/// bad command line's line is the program's, as its cluster's are.
fn program_name(args: &[OsString]) -> String {
    let name = ProcessNames::of_worker(args.first().map(OsString::as_os_str)).program().to_string();
    ringmaster_balancer::log::set_program(&name);
    name
}

/// A parse's outcome told: `--help` (and `--version`) printed, a success
/// code; an error said in one log line, code 2.
fn said<T>(parsed: Result<T, clap::Error>) -> Result<T, ExitCode> {
    match parsed {
        Ok(parsed) => Ok(parsed),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            ringmaster_balancer::log!(error: "{}", usage_error::one_line(&e.to_string()));
            Err(ExitCode::from(2))
        }
    }
}

/// A command line whose flags include [`ClusterFlags`].
trait HasClusterFlags {
    fn cluster_flags(&self) -> &ClusterFlags;
}

impl HasClusterFlags for Cli {
    fn cluster_flags(&self) -> &ClusterFlags {
        &self.cluster
    }
}

impl HasClusterFlags for ProgramCli {
    fn cluster_flags(&self) -> &ClusterFlags {
        &self.cluster
    }
}
