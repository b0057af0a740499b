//! What the master is told on the command line, already checked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ringmaster_engine::{BackendChoice, EngineConfig};

/// How connections reach workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The master accepts and hands each connection to the next worker in turn
    /// over its channel (Node's `SCHED_RR`).
    RoundRobin,
    /// Every worker accepts on the shared listening socket; the kernel picks
    /// who wakes (Node's `SCHED_NONE`).
    Shared,
}

impl Mode {
    /// The name used on the command line and in the stats line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::RoundRobin => "rr",
            Mode::Shared => "shared",
        }
    }
}

/// The master's settings.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Balancing mode.
    pub mode: Mode,
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
    /// Kill a worker whose loop has not turned for this long.
    pub watchdog: Option<Duration>,
    /// The kernel interface asked for (`--backend`); the master resolves it
    /// once and every worker runs on what it chose.
    pub backend: BackendChoice,
    /// What every worker runs with.
    pub engine: EngineConfig,
}
