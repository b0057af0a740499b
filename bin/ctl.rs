//! `ringmaster ctl PATH COMMAND` (`NAME ctl` in a program of your own): one
//! command to a running master's control socket, its reply printed; `status
//! --table` and `top` draw the `status` line as a table for people, as `pm2
//! list` and `pm2 monit` do.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ringmaster_balancer::control::ctl::{self, TopEnd};
use ringmaster_balancer::title::BINARY_NAME;

/// How often `top` redraws.
const TOP_EVERY: Duration = Duration::from_secs(1);

/// `ringmaster ctl`'s arguments (`NAME ctl`'s, in a program of your own).
#[derive(Clone, Debug, Args)]
pub struct CtlArgs {
    /// The master's `--control` path.
    path: PathBuf,
    /// `status`, `reload`, `scale N`, `upgrade`, `send TEXT` (a line to
    /// every worker's `Handler::on_message`) or `stop`, sent to the master; or `top`: the status table, redrawn every second until
    /// interrupted or the master goes away.
    #[arg(required = true, num_args = 1..)]
    command: Vec<String>,
    /// With `status`: a table (id, pid, cpu, state, uptime, restarts, live,
    /// requests, req/s, memory) instead of the JSON line.
    #[arg(long)]
    table: bool,
    /// With `top`: stop after this many frames [default: until interrupted].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    /// The program whose `ctl` this is, which its errors name: `ringmaster`,
    /// or a program of your own's (its cluster's name, as `Cluster::serve`
    /// runs it).
    #[arg(skip = BINARY_NAME.to_string())]
    program: String,
}

impl CtlArgs {
    /// These arguments, as `program`'s `ctl`.
    pub(crate) fn of_program(&self, program: &str) -> CtlArgs {
        CtlArgs { program: program.to_string(), ..self.clone() }
    }
}

/// Runs `ringmaster ctl` (`NAME ctl`, its errors under that name): success,
/// or failure when the reply is an error or the socket does not answer (2
/// for flags that do not go together).
pub fn ctl(args: &CtlArgs) -> ExitCode {
    let words: Vec<&str> = args.command.iter().map(String::as_str).collect();
    let top = words == ["top"];
    if args.table && words != ["status"] {
        return usage(args, "--table goes with status only");
    }
    if args.count.is_some() && !top {
        return usage(args, "--count goes with top only");
    }
    let result = if top {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        // Either end (the frames counted, the master gone) is a success.
        ctl::top(&args.program, &args.path, args.count, TOP_EVERY, &mut stdout.lock(), terminal).map(|_: TopEnd| None)
    } else if args.table {
        ctl::status_table(&args.path).map(Some)
    } else {
        ctl::request(&args.path, &words.join(" ")).map(Some)
    };
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(reply)) => {
            print!("{reply}");
            if !reply.ends_with('\n') {
                println!();
            }
            if reply.starts_with("error") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{} ctl: {e}", args.program);
            ExitCode::FAILURE
        }
    }
}

fn usage(args: &CtlArgs, problem: &str) -> ExitCode {
    let program = &args.program;
    eprintln!("{program} ctl: {problem} (see {program} ctl --help)");
    ExitCode::from(2)
}
