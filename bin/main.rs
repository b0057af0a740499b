//! `ringmaster`: the command line. Without the worker role in the
//! environment it is the master; the master re-executes this binary with
//! the role set to start each worker, which parses the same flags.

mod escapes;
mod usage_error;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ringmaster_balancer::cpus::{allowed_cpus, default_workers, parse_cpu_list};
use ringmaster_balancer::privileges::{self, Credentials};
use ringmaster_balancer::title::{set_process_title, set_thread_name, MASTER_THREAD_NAME, MASTER_TITLE};
use ringmaster_balancer::{identity_from_env, run_master, run_worker, MasterConfig, Mode, WorkerExec};
use ringmaster_engine::{BackendChoice, EngineConfig, FixedBody};

/// Node's cluster at the limit of Linux: a master balancing connections over
/// pinned io_uring worker processes, each an HTTP/1.1 responder.
#[derive(Debug, Parser)]
// `bin_name`: a worker's argv[0] is its title, which usage lines must not show.
#[command(name = "ringmaster", bin_name = "ringmaster", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<SubCommand>,

    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,

    /// Balancing mode: `rr` (the master accepts and hands connections out in
    /// turn, skipping a worker that does not keep up), `least` (the master
    /// hands each to the worker with the fewest outstanding), `shared` (every
    /// worker accepts on the one socket) or `reuseport` (every worker accepts
    /// on its own SO_REUSEPORT socket).
    #[arg(long, value_enum, default_value_t = ModeArg::Rr)]
    mode: ModeArg,

    /// Worker processes; with `--cpus` they take its CPUs in turn, wrapping
    /// around [default: one per CPU of `--cpus`, else one per CPU the process
    /// may run on].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,

    /// CPUs to pin workers to, e.g. `0,2-3` (not with `--no-pin`) [default:
    /// every CPU the process may run on].
    #[arg(long, value_parser = parse_cpus, conflicts_with = "no_pin")]
    cpus: Option<CpuList>,

    /// Do not pin workers to CPUs.
    #[arg(long)]
    no_pin: bool,

    /// Listen backlog.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..))]
    backlog: i32,

    /// Connections one worker holds at once.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    max_conns: u32,

    /// Largest request header block, in bytes (`431` beyond).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    max_header: u32,

    /// Largest request body, in bytes (`413` beyond).
    #[arg(long, default_value_t = 1_048_576)]
    max_body: u64,

    /// Seconds a client has to send a complete header block.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    header_timeout: Duration,

    /// Seconds a keep-alive connection may stay idle.
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    idle_timeout: Duration,

    /// Seconds a client has to send a request's body, one more for each KiB
    /// that arrives (a client slower than 1 KiB/s gets `408` and a close).
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    body_timeout: Duration,

    /// Seconds workers get to finish their connections on shutdown before they are killed.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_timeout: Duration,

    /// The response body. Backslash escapes: `\n` newline, `\r` carriage
    /// return, `\t` tab, `\\` backslash, `\xHH` the byte 0xHH; any other
    /// backslash is an error [default: "hello world\n"].
    // clap would quote the default as "hello world\\n": the line above says it instead.
    #[arg(long, default_value = r"hello world\n", hide_default_value = true, value_parser = parse_body)]
    body: Body,

    /// Create a control socket (mode 0600) at this path: `status`, `reload`,
    /// `scale N`, `stop`; see `ringmaster ctl`.
    #[arg(long)]
    control: Option<PathBuf>,

    /// Seconds a worker's loop may stand still before the master kills and
    /// replaces it (0 turns the watchdog off).
    #[arg(long, default_value = "30", value_parser = parse_watchdog)]
    watchdog: Duration,

    /// Kernel interface for the event loops: `auto` (io_uring if this process
    /// may use it, else epoll, saying why), `uring` (or fail), or `epoll`.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,

    /// Run workers as this user, with its groups, from just before they serve;
    /// the master stays root (it binds, creates sockets and signals workers)
    /// [default: the master's user].
    #[arg(long, value_name = "NAME")]
    user: Option<String>,

    /// Run workers with this group: with `--user`, instead of the user's own;
    /// alone, as their only group, changing nothing else [default: the user's
    /// group, else the master's].
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SubCommand {
    /// Send a command to a running master's control socket and print the reply.
    Ctl {
        /// The master's `--control` path.
        path: PathBuf,
        /// `status`, `reload`, `scale N` or `stop`.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Rr,
    Least,
    Shared,
    Reuseport,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Auto,
    Uring,
    Epoll,
}

#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

/// `--body` with its escapes replaced.
#[derive(Clone, Debug)]
struct Body(Vec<u8>);

fn parse_body(text: &str) -> Result<Body, String> {
    escapes::unescape(text).map(Body)
}

fn parse_cpus(text: &str) -> Result<CpuList, ringmaster_balancer::Error> {
    parse_cpu_list(text).map(CpuList)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("'{text}' must be more than 0 and at most 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_watchdog(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

impl Cli {
    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            max_conns: self.max_conns as usize,
            max_header: self.max_header as usize,
            max_body: self.max_body,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            drain_timeout: self.shutdown_timeout,
            ..EngineConfig::default()
        }
    }

    /// The master's settings; `args` are the process's arguments, `argv[0]`
    /// first, and `credentials` what `--user` and `--group` resolved to.
    fn master_config(&self, args: &[OsString], credentials: Option<Credentials>) -> MasterConfig {
        let cpus = self.cpus.as_ref().map(|c| c.0.as_slice());
        let workers = self.workers.map_or_else(|| default_workers(cpus, &allowed_cpus()), |n| n as usize);
        MasterConfig {
            bind: self.bind,
            mode: match self.mode {
                ModeArg::Rr => Mode::RoundRobin,
                ModeArg::Least => Mode::Least,
                ModeArg::Shared => Mode::Shared,
                ModeArg::Reuseport => Mode::Reuseport,
            },
            workers,
            cpus: self.cpus.as_ref().map(|c| c.0.clone()),
            pin: !self.no_pin,
            backlog: self.backlog,
            shutdown_timeout: self.shutdown_timeout,
            control: self.control.clone(),
            watchdog: (!self.watchdog.is_zero()).then_some(self.watchdog),
            backend: match self.backend {
                BackendArg::Auto => BackendChoice::Auto,
                BackendArg::Uring => BackendChoice::Uring,
                BackendArg::Epoll => BackendChoice::Epoll,
            },
            engine: self.engine_config(),
            exec: WorkerExec { args: args.iter().skip(1).cloned().collect(), credentials },
        }
    }
}

fn main() -> ExitCode {
    // Captured once: the master's title overwrites the arguments in place, and
    // workers are given this copy.
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            ringmaster_balancer::log!("{}", usage_error::one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Some(SubCommand::Ctl { path, command }) = &cli.command {
        return match ringmaster_balancer::control::request(path, &command.join(" ")) {
            Ok(reply) => {
                println!("{reply}");
                if reply.starts_with("error") {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("ringmaster ctl: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(identity) = identity_from_env() {
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => {
                ringmaster_balancer::log!("worker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut handler = FixedBody::new(cli.body.0.clone());
        return match run_worker(identity, &cli.engine_config(), &mut handler) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                ringmaster_balancer::log!("worker {}: {e}", identity.id);
                ExitCode::FAILURE
            }
        };
    }
    // Names are resolved once, here; workers get the numeric ids.
    let credentials = match privileges::resolve(cli.user.as_deref(), cli.group.as_deref()) {
        Ok(credentials) => credentials,
        Err(e) => {
            ringmaster_balancer::log!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Err(e)) = credentials.as_ref().map(privileges::check_can_switch) {
        ringmaster_balancer::log!("{e}");
        return ExitCode::FAILURE;
    }
    let config = cli.master_config(&args, credentials);
    if let Err(e) = set_thread_name(MASTER_THREAD_NAME).and_then(|()| set_process_title(MASTER_TITLE, &args)) {
        ringmaster_balancer::log!("cannot set the master's title: {e}");
    }
    match run_master(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ringmaster_balancer::log!("{e}");
            ExitCode::FAILURE
        }
    }
}
