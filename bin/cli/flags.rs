//! The flags every program on the command line takes, the binary's and a
//! program's with its own handler ([`super::parse_program`]): where to
//! listen, how to balance, limits and timeouts, parsed into a [`Cluster`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ringmaster_balancer::cpus::parse_cpu_list;
use ringmaster_balancer::{Mode, SteerChoice};
use ringmaster_engine::{BackendChoice, EngineConfig};

use super::{LEAST_HEADER, MOST_CONNS_OR_HEADER};
use crate::address::parse_address;
use crate::{Cluster, LogFormat};

/// The cluster's flags.
#[derive(Debug, Args)]
pub(crate) struct ClusterFlags {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_address)]
    bind: SocketAddr,

    /// Balancing mode: `rr` (the master accepts and hands connections out in
    /// turn, skipping a worker that does not keep up), `least` (the master
    /// hands each to the least loaded worker: its outstanding connections,
    /// plus one for every 25 µs its acknowledgements lately took), `shared` (every
    /// worker accepts on the one socket) or `reuseport` (every worker accepts
    /// on its own SO_REUSEPORT socket).
    #[arg(long, value_enum, default_value_t = ModeArg::Rr)]
    mode: ModeArg,

    /// How `--mode reuseport` picks a worker's listener: `load` (an eBPF
    /// program picks the less loaded of two random workers, skipping one that
    /// is stalled, full or draining; needs root or CAP_BPF + CAP_NET_ADMIN)
    /// or `hash` (the kernel's hash of addresses and ports) [default: `load`
    /// where the master may load BPF programs, else `hash`, saying why].
    #[arg(long, value_enum)]
    steer: Option<SteerArg>,

    /// Worker processes; with `--cpus` they take its CPUs in turn, wrapping
    /// around [default: one per CPU of `--cpus`, else one per CPU the process
    /// may run on, or, fewer, one per CPU of a cgroup CPU limit, unpinned].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=ringmaster_balancer::MAX_WORKERS as i64))]
    workers: Option<u32>,

    /// CPUs to pin workers to, e.g. `0,2-3` (not with `--no-pin`) [default:
    /// every CPU the process may run on].
    #[arg(long, value_parser = parse_cpus, conflicts_with = "no_pin")]
    cpus: Option<CpuList>,

    /// Do not pin workers to CPUs.
    #[arg(long)]
    no_pin: bool,

    /// Listen backlog (the kernel caps it at its net.core.somaxconn); also
    /// the most connections the master holds for workers that cannot take them.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..))]
    backlog: i32,

    /// Connections one worker holds at once (fewer when its open-file limit at its start allows fewer: it
    /// reserves room for what it can hold, and says so at start).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1..=MOST_CONNS_OR_HEADER))]
    max_conns: u32,

    /// Largest request header block, in bytes (`431` beyond; `414` when the request line alone is longer).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(LEAST_HEADER..=MOST_CONNS_OR_HEADER))]
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

    /// Largest response body a handler may write, in bytes (`500` beyond;
    /// the fixed `--body` is not limited by it).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(0..=64 * 1024 * 1024))]
    max_response: u32,

    /// Buffers for request bodies that do not arrive with their head (and chunked ones), each
    /// `--max-header` + `--max-body` bytes, touched only when used (`503`
    /// when none is free).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=65_536))]
    body_buffers: u32,

    /// A path every worker answers itself, ahead of any handler: `GET PATH`
    /// gets `200 ready` while it serves and `503 draining` once it drains
    /// (`HEAD PATH` the same status, without the body), for a load
    /// balancer's or Kubernetes' probe [default: none].
    #[arg(long, value_name = "PATH", value_parser = parse_health_path)]
    health_path: Option<String>,

    /// Seconds every worker keeps serving after `SIGTERM` or `stop` as a lame
    /// duck, its `--health-path` answering `503` so load balancers stop
    /// sending, before the drain begins (0: drain at once).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_seconds_or_off)]
    drain_delay: Duration,

    /// Serve Prometheus metrics from the master at `http://ADDR/metrics`
    /// (text format 0.0.4), on a listener of its own [default: off].
    #[arg(long, value_parser = parse_address, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Log lines as `text` (time, level, pid, message) or `json` (one object
    /// per line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,

    /// Seconds workers get to finish their connections on shutdown before they
    /// are killed; also how long a new master (`upgrade`) has to be ready,
    /// and a new worker process (at least 2 s).
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_timeout: Duration,

    /// Create a control socket (mode 0600) at this path: `status`, `reload`,
    /// `scale N`, `upgrade`, `send TEXT`, `stop`; see `ringmaster ctl`
    /// [default: none].
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,

    /// Seconds a worker's loop may stand still before the master kills and
    /// replaces it (0 turns the watchdog off).
    #[arg(long, default_value = "30", value_parser = parse_seconds_or_off)]
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Rr,
    Least,
    Shared,
    Reuseport,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SteerArg {
    Load,
    Hash,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Auto,
    Uring,
    Epoll,
}

#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

fn parse_cpus(text: &str) -> Result<CpuList, ringmaster_balancer::Error> {
    parse_cpu_list(text).map(CpuList)
}

pub(crate) fn parse_health_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("'{text}' is not a path: it starts with / and has no spaces or control characters"));
    }
    Ok(text.to_string())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("'{text}' must be more than 0 and at most 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// As [`parse_seconds`], where zero (`0`, `0.0`) turns the thing off.
fn parse_seconds_or_off(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>().is_ok_and(|seconds| seconds == 0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text).map_err(|e| format!("{e}, or 0 for none"))
}

impl ClusterFlags {
    /// `--steer` was given with a mode other than `reuseport`.
    pub(crate) fn steer_without_reuseport(&self) -> bool {
        self.steer.is_some() && !matches!(self.mode, ModeArg::Reuseport)
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            max_conns: self.max_conns as usize,
            max_header: self.max_header as usize,
            max_body: self.max_body,
            max_response: self.max_response as usize,
            body_buffers: self.body_buffers as usize,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            drain_timeout: self.shutdown_timeout,
            health_path: self.health_path.clone(),
            ..EngineConfig::default()
        }
    }

    /// The cluster these flags describe; workers get `args` (`argv[0]` first).
    pub(crate) fn cluster(&self, args: &[OsString]) -> Cluster {
        let mut cluster = Cluster::new()
            .bind(self.bind)
            .mode(match self.mode {
                ModeArg::Rr => Mode::RoundRobin,
                ModeArg::Least => Mode::Least,
                ModeArg::Shared => Mode::Shared,
                ModeArg::Reuseport => Mode::Reuseport,
            })
            .steer(match self.steer {
                None => SteerChoice::Auto,
                Some(SteerArg::Load) => SteerChoice::Load,
                Some(SteerArg::Hash) => SteerChoice::Hash,
            })
            .pin(!self.no_pin)
            .backlog(self.backlog)
            .engine(self.engine_config())
            .shutdown_timeout(self.shutdown_timeout)
            .drain_delay(self.drain_delay)
            .log_format(match self.log_format {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            })
            .watchdog((!self.watchdog.is_zero()).then_some(self.watchdog))
            .backend(match self.backend {
                BackendArg::Auto => BackendChoice::Auto,
                BackendArg::Uring => BackendChoice::Uring,
                BackendArg::Epoll => BackendChoice::Epoll,
            })
            .worker_args(args.iter().skip(1).cloned().collect());
        if let Some(workers) = self.workers {
            cluster = cluster.workers(workers as usize);
        }
        if let Some(cpus) = &self.cpus {
            cluster = cluster.cpus(cpus.0.clone());
        }
        if let Some(control) = &self.control {
            cluster = cluster.control(control.clone());
        }
        if let Some(metrics) = self.metrics {
            cluster = cluster.metrics(metrics);
        }
        if let Some(user) = &self.user {
            cluster = cluster.user(user.clone());
        }
        if let Some(group) = &self.group {
            cluster = cluster.group(group.clone());
        }
        cluster
    }
}
