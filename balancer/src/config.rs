//! What the master is told on the command line, already checked.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_engine::{BackendChoice, EngineConfig};

use crate::privileges::Credentials;
use crate::title::ProcessNames;

/// How connections reach workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The master accepts and hands each connection to the next worker in turn
    /// over its channel, skipping a worker that does not keep up (Node's
    /// `SCHED_RR` with its `free` list).
    RoundRobin,
    /// The master accepts and hands each connection to the least loaded
    /// worker: its outstanding connections, plus one for every 25 µs of the
    /// delay its acks lately showed (two random choices above 8 workers).
    Least,
    /// Every worker accepts on the shared listening socket; the kernel picks
    /// who wakes (Node's `SCHED_NONE`).
    Shared,
    /// Every worker accepts on its own `SO_REUSEPORT` listener, kept by the
    /// master per worker slot; the kernel hashes each connection to one.
    Reuseport,
}

impl Mode {
    /// The name used on the command line and in the stats line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::RoundRobin => "rr",
            Mode::Least => "least",
            Mode::Shared => "shared",
            Mode::Reuseport => "reuseport",
        }
    }
}

/// How `--mode reuseport` spreads connections over its listeners (`--steer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SteerChoice {
    /// By load where this process may load BPF programs, else by hash
    /// (saying why, once).
    #[default]
    Auto,
    /// By the kernel's hash of each connection's addresses and ports.
    Hash,
    /// By live load, with an eBPF program (or fail).
    Load,
}

/// The master's settings.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Balancing mode.
    pub mode: Mode,
    /// How `reuseport` chooses a worker's listener (`Auto` with any other mode).
    pub steer: SteerChoice,
    /// Worker processes to run.
    pub workers: usize,
    /// CPUs to pin workers to, in order (`None`: every CPU the process may use).
    pub cpus: Option<Vec<usize>>,
    /// Pin each worker to one CPU.
    pub pin: bool,
    /// Listen backlog.
    pub backlog: i32,
    /// How long workers get to finish their connections on shutdown.
    pub shutdown_timeout: Duration,
    /// Where to create the control socket, if anywhere.
    pub control: Option<PathBuf>,
    /// Where to serve Prometheus metrics, if anywhere (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// After `SIGTERM` or `stop`: how long every worker keeps serving as a
    /// lame duck (its health path answers `503`) before the drain begins.
    pub drain_delay: Duration,
    /// Kill a worker whose loop has not turned for this long.
    pub watchdog: Option<Duration>,
    /// The kernel interface asked for (`--backend`); the master resolves it
    /// once and every worker runs on what it chose.
    pub backend: BackendChoice,
    /// What every worker runs with.
    pub engine: EngineConfig,
    /// How every worker process is executed.
    pub exec: WorkerExec,
    /// `argv[0]` as this master was started: `upgrade` runs the file it
    /// names (resolved at start), with the arguments in `exec`.
    pub program: Option<OsString>,
    /// What becomes of a line a worker sends (`send_to_master`): this hook's
    /// call, or (`None`) a log line.
    pub on_worker_message: Option<WorkerMessageHook>,
}

/// The library user's hook for lines from workers: called on the master's
/// loop with the worker's id and the line, as Node's `worker.on('message')`.
/// It runs between the master's I/O, so it should return quickly.
#[derive(Clone)]
pub struct WorkerMessageHook(pub Arc<WorkerMessageFn>);

/// The call a [`WorkerMessageHook`] makes: the worker's id and its line.
pub type WorkerMessageFn = dyn Fn(usize, &str) + Send + Sync;

impl std::fmt::Debug for WorkerMessageHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerMessageHook(..)")
    }
}

/// How every worker process is executed, the same for all of them.
#[derive(Clone, Debug, Default)]
pub struct WorkerExec {
    /// The arguments each worker is given (`argv[0]` aside): the master's own,
    /// captured at start, before the master's title overwrote them.
    pub args: Vec<OsString>,
    /// The ids workers switch to before serving (`--user`, `--group`); `None`
    /// keeps the master's.
    pub credentials: Option<Credentials>,
    /// The names the processes go by (`ps`, `top`): each worker's title is
    /// its `argv[0]`.
    pub names: ProcessNames,
}
