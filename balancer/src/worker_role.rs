//! The worker side of a spawn: read the identity the master put in the
//! environment, name its thread, pin, take the inherited fds, give up root
//! (`--user`, `--group`), and run the engine.

use std::io;
use std::os::fd::AsFd;

use nix::sys::signal::Signal;
use ringmaster_engine::{Backend, EngineConfig, Handler, Sources, StatsBlock};

use crate::faults::{faults_for, ENV_FAULT};
use crate::privileges::{switch_to, Credentials};
use crate::signals::signal_fd;
use crate::spawn::{
    inherited_fd, CHANNEL_FD, ENV_CPU, ENV_LISTENER, ENV_STATS_SLOT, ENV_STATS_SLOTS, ENV_WORKER_ID, LISTENER_FD,
    STATS_FD,
};
use crate::title::{set_thread_name, worker_thread_name};

/// The backend the master chose (`uring` or `epoll`).
pub const ENV_BACKEND: &str = "RINGMASTER_BACKEND";

/// Who this worker is, as the master told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Worker id, 1-based.
    pub id: usize,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// The stats slot this process writes.
    pub stats_slot: usize,
    /// Slots in the stats block.
    pub stats_slots: usize,
    /// The listener was passed (`shared` mode).
    pub has_listener: bool,
}

/// The identity in the environment, if this process was started as a worker.
pub fn identity_from_env() -> Option<Result<WorkerIdentity, String>> {
    let id = std::env::var(ENV_WORKER_ID).ok()?;
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    Some(parse_identity(
        &id,
        &var(ENV_CPU),
        &var(ENV_STATS_SLOT),
        &var(ENV_STATS_SLOTS),
        std::env::var(ENV_LISTENER).is_ok_and(|v| v == "1"),
    ))
}

fn parse_identity(id: &str, cpu: &str, slot: &str, slots: &str, has_listener: bool) -> Result<WorkerIdentity, String> {
    let id: usize = id.parse().map_err(|_| format!("{ENV_WORKER_ID}={id:?} is not a worker id"))?;
    let cpu = match cpu {
        "none" | "" => None,
        n => Some(n.parse().map_err(|_| format!("{ENV_CPU}={n:?} is not a CPU"))?),
    };
    let stats_slots: usize = slots.parse().map_err(|_| format!("{ENV_STATS_SLOTS}={slots:?} is not a count"))?;
    let stats_slot: usize = slot.parse().map_err(|_| format!("{ENV_STATS_SLOT}={slot:?} is not a slot"))?;
    if id == 0 || stats_slot >= stats_slots {
        return Err(format!("worker {id}: stats slot {stats_slot} is outside the stats block ({stats_slots} slots)"));
    }
    Ok(WorkerIdentity { id, cpu, stats_slot, stats_slots, has_listener })
}

/// Runs this process as worker `identity` until it has drained, answering
/// with `handler`.
pub fn run_worker(identity: WorkerIdentity, config: &EngineConfig, handler: &mut dyn Handler) -> io::Result<()> {
    let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let faults = faults_for(identity.id, &std::env::var(ENV_FAULT).unwrap_or_default()).map_err(io::Error::other)?;
    if faults.exit_at_start {
        crate::log!("worker {}: {ENV_FAULT}=exit-at-start: exiting", identity.id);
        std::process::exit(3);
    }
    let credentials = Credentials::from_env().map_err(io::Error::other)?;
    if let Err(e) = set_thread_name(&worker_thread_name(identity.id)) {
        crate::log!("worker {}: cannot name its thread: {e}", identity.id);
    }
    ignore_signals_meant_for_the_master();
    if let Some(cpu) = identity.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(io::Error::other(format!("cannot pin worker {} to CPU {cpu}", identity.id)));
        }
    }
    ringmaster_engine::ignore_sigpipe()?;
    let channel = inherited_fd(CHANNEL_FD).map_err(|e| context("channel", e))?;
    let stats_fd = inherited_fd(STATS_FD).map_err(|e| context("stats block", e))?;
    let listener =
        if identity.has_listener { Some(inherited_fd(LISTENER_FD).map_err(|e| context("listener", e))?) } else { None };
    let stats =
        StatsBlock::open_shared(stats_fd.as_fd(), identity.stats_slots).map_err(|e| context("stats block", e))?;
    drop(stats_fd);
    let counters =
        stats.slot(identity.stats_slot).ok_or_else(|| io::Error::other("stats slot outside the stats block"))?;
    let shutdown =
        signal_fd(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT]).map_err(|e| context("signalfd", e))?;
    // Last, before the ring exists (its kernel threads take the ids it is made with).
    if let Some(credentials) = &credentials {
        switch_to(credentials, faults.skip_setuid)
            .map_err(|e| context(&format!("refusing to serve: cannot switch to {credentials}"), e))?;
    }
    let sources = Sources { listener, channel: Some(channel), shutdown: Some(shutdown) };
    // The master chose the backend once; a worker never probes again.
    let mut config = config.clone();
    config.faults = faults.engine;
    if let Some(backend) = std::env::var(ENV_BACKEND).ok().and_then(|name| Backend::from_name(&name)) {
        config.backend = backend;
    }
    ringmaster_engine::run(&config, sources, counters, handler)
}

/// A terminal's hang-up or job-control signals reach the whole process group;
/// they are the master's to act on, so a worker ignores them instead of
/// dying (SIGHUP, SIGUSR1) or stopping (SIGTTIN, SIGTTOU).
fn ignore_signals_meant_for_the_master() {
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: SIG_IGN is a valid disposition for these signals; no handler code runs.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_checked() {
        assert_eq!(
            parse_identity("2", "1", "5", "8", true),
            Ok(WorkerIdentity { id: 2, cpu: Some(1), stats_slot: 5, stats_slots: 8, has_listener: true })
        );
        assert_eq!(parse_identity("1", "none", "0", "8", false).map(|i| i.cpu), Ok(None));
        assert!(parse_identity("0", "none", "0", "8", false).is_err());
        assert!(parse_identity("1", "none", "8", "8", false).is_err());
        assert!(parse_identity("x", "none", "0", "8", false).is_err());
    }
}
