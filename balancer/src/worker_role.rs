//! The worker side of a spawn: read the identity the master put in the
//! environment, name its thread, pin, take the inherited fds, give up root
//! (`--user`, `--group`), and run the engine.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::signal::Signal;
use ringmaster_engine::{AcceptTally, Backend, EngineConfig, Handler, Sources, StatsBlock};

use crate::error::{Context, Error, Result};
use crate::faults::{faults_for, ENV_FAULT};
use crate::privileges::{switch_to, Credentials};
use crate::signals::signal_fd;
use crate::spawn::{
    inherited_fd, started_as_worker, ACCEPT_TALLY_FD, CHANNEL_FD, ENV_ACCEPT_TALLY, ENV_BACKEND, ENV_CPU, ENV_LISTENER,
    ENV_STATS_SLOT, ENV_STATS_SLOTS, ENV_WORKER_ID, LISTENER_FD, LISTENER_OWN, LISTENER_SHARED, STATS_FD,
};
use crate::title::{set_thread_name, ProcessNames};

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
    /// The listener passed, if any.
    pub listener: Option<ListenerKind>,
    /// The kernel interface to run on, as the master chose it.
    pub backend: Backend,
    /// The byte offset of its accept tally in the map passed, if one is.
    pub accept_tally: Option<usize>,
}

/// Which listener a worker was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// The master's, shared by every worker (`shared` mode).
    Shared,
    /// Its worker slot's own (`reuseport` mode): drained before it is closed.
    Own,
}

/// The identity in the environment, if this process was started as a worker.
pub fn identity_from_env() -> Option<Result<WorkerIdentity>> {
    if !started_as_worker() {
        return None;
    }
    Some(parse_identity(|name| std::env::var(name).ok()))
}

/// Reads the identity from `var` (the environment, or a test's table).
fn parse_identity(var: impl Fn(&str) -> Option<String>) -> Result<WorkerIdentity> {
    let get = |name: &str| var(name).unwrap_or_default();
    let bad = |name: &str, what: &str| Error::WorkerEnv(format!("{name}={:?} is not {what}", get(name)));
    let id: usize = get(ENV_WORKER_ID).parse().map_err(|_| bad(ENV_WORKER_ID, "a worker id"))?;
    let cpu = match get(ENV_CPU).as_str() {
        "none" | "" => None,
        n => Some(n.parse().map_err(|_| bad(ENV_CPU, "a CPU"))?),
    };
    let stats_slots: usize = get(ENV_STATS_SLOTS).parse().map_err(|_| bad(ENV_STATS_SLOTS, "a count"))?;
    let stats_slot: usize = get(ENV_STATS_SLOT).parse().map_err(|_| bad(ENV_STATS_SLOT, "a slot"))?;
    if id == 0 || stats_slot >= stats_slots {
        return Err(Error::WorkerEnv(format!(
            "worker {id}: stats slot {stats_slot} is outside the stats block ({stats_slots} slots)"
        )));
    }
    let backend = Backend::from_name(&get(ENV_BACKEND)).ok_or_else(|| bad(ENV_BACKEND, "uring or epoll"))?;
    let listener = match get(ENV_LISTENER).as_str() {
        "" => None,
        LISTENER_SHARED => Some(ListenerKind::Shared),
        LISTENER_OWN => Some(ListenerKind::Own),
        _ => return Err(bad(ENV_LISTENER, "shared or own")),
    };
    let accept_tally = match get(ENV_ACCEPT_TALLY).as_str() {
        "" => None,
        offset => Some(offset.parse().map_err(|_| bad(ENV_ACCEPT_TALLY, "a byte offset"))?),
    };
    Ok(WorkerIdentity { id, cpu, stats_slot, stats_slots, listener, backend, accept_tally })
}

/// Runs this process as worker `identity` until it has drained, answering
/// with `handler`; its thread is named as `names` says.
pub fn run_worker(
    identity: WorkerIdentity,
    names: &ProcessNames,
    config: &EngineConfig,
    handler: &mut dyn Handler,
) -> Result<()> {
    let faults = faults_for(identity.id, identity.stats_slot, &std::env::var(ENV_FAULT).unwrap_or_default())?;
    if faults.exit_at_start {
        crate::log!(warn: "worker {}: {ENV_FAULT}=exit-at-start: exiting", identity.id);
        std::process::exit(3);
    }
    let credentials = Credentials::from_env()?;
    if let Err(e) = set_thread_name(&names.worker_thread_name(identity.id)) {
        crate::log!(warn: "worker {}: cannot name its thread: {e}", identity.id);
    }
    ignore_signals_meant_for_the_master();
    if let Some(cpu) = identity.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(Error::Config(format!("cannot pin worker {} to CPU {cpu}", identity.id)));
        }
    }
    ringmaster_engine::ignore_sigpipe().context("cannot ignore SIGPIPE")?;
    let channel = inherited_fd(CHANNEL_FD).context("channel")?;
    let stats_fd = inherited_fd(STATS_FD).context("stats block")?;
    let listener = match identity.listener {
        Some(_) => Some(inherited_fd(LISTENER_FD).context("listener")?),
        None => None,
    };
    let stats = StatsBlock::open_shared(stats_fd.as_fd(), identity.stats_slots).context("stats block")?;
    drop(stats_fd);
    let accept_tally = match identity.accept_tally {
        Some(offset) => {
            let fd = inherited_fd(ACCEPT_TALLY_FD).context("accept tally")?;
            Some(AcceptTally::map_shared(fd.as_fd(), offset).context("accept tally")?)
        }
        None => None,
    };
    let counters = stats
        .slot(identity.stats_slot)
        .ok_or_else(|| Error::WorkerEnv(format!("stats slot {} outside the stats block", identity.stats_slot)))?;
    let shutdown = signal_fd(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT]).context("signalfd")?;
    if faults.never_ready {
        crate::log!(warn: "worker {}: {ENV_FAULT}=never-ready:{}: not serving", identity.id, identity.stats_slot);
        wait_to_be_stopped(channel.as_fd(), shutdown.as_fd());
        return Ok(());
    }
    // Last, before the ring exists (its kernel threads take the ids it is made with).
    if let Some(credentials) = &credentials {
        // Where io_uring rings count as locked memory, a worker leaving a
        // master that may lock memory keeps that one capability: its ring is
        // then not counted against its new user's limit (`locked_memory.rs`).
        let keep_ipc_lock = identity.backend == ringmaster_engine::Backend::Uring
            && ringmaster_engine::backend::kernel_counts_rings_as_locked()
            && ringmaster_engine::exempt_from_locked_memory_limit();
        switch_to(credentials, faults.skip_setuid, keep_ipc_lock)
            .context(format_args!("refusing to serve: cannot switch to {credentials}"))?;
    }
    let own_listener = identity.listener == Some(ListenerKind::Own);
    let sources = Sources { listener, own_listener, channel: Some(channel), shutdown: Some(shutdown), accept_tally };
    // The master chose the backend once; a worker never probes again.
    let config = EngineConfig { backend: identity.backend, faults: faults.engine, ..config.clone() };
    let backend = identity.backend.name();
    ringmaster_engine::run(&config, sources, counters, handler).context(format_args!("the {backend} loop"))
}

/// Blocks until the channel or the stop signals have something to read:
/// the master asked a drain or went away, or a stop signal came (the
/// `never-ready` fault, which must not outlive its master).
fn wait_to_be_stopped(channel: BorrowedFd<'_>, shutdown: BorrowedFd<'_>) {
    let mut fds = [channel, shutdown].map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
    loop {
        // SAFETY: `fds` is an array of two valid pollfd, alive for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// A terminal's hang-up or job-control signals reach the whole process group,
/// and so does a signal sent to the group; they are the master's to act on,
/// so a worker ignores them instead of dying (SIGHUP, SIGUSR1, SIGUSR2) or
/// stopping (SIGTTIN, SIGTTOU).
fn ignore_signals_meant_for_the_master() {
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: SIG_IGN is a valid disposition for these signals; no handler code runs.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn identity_is_checked() {
        let base = [
            (ENV_WORKER_ID, "2"),
            (ENV_CPU, "1"),
            (ENV_STATS_SLOT, "5"),
            (ENV_STATS_SLOTS, "8"),
            (ENV_LISTENER, "shared"),
            (ENV_BACKEND, "epoll"),
            (ENV_ACCEPT_TALLY, ""),
        ];
        assert_eq!(
            parse_identity(env(&base)).ok(),
            Some(WorkerIdentity {
                id: 2,
                cpu: Some(1),
                stats_slot: 5,
                stats_slots: 8,
                listener: Some(ListenerKind::Shared),
                backend: Backend::Epoll,
                accept_tally: None,
            })
        );
        let with = |name: &str, value: &'static str| {
            let mut changed = base;
            changed.iter_mut().filter(|(n, _)| *n == name).for_each(|pair| pair.1 = value);
            parse_identity(env(&changed))
        };
        assert_eq!(with(ENV_CPU, "none").map(|i| i.cpu).ok(), Some(None));
        assert_eq!(with(ENV_LISTENER, "own").map(|i| i.listener).ok(), Some(Some(ListenerKind::Own)));
        assert_eq!(with(ENV_LISTENER, "").map(|i| i.listener).ok(), Some(None));
        assert_eq!(with(ENV_ACCEPT_TALLY, "128").map(|i| i.accept_tally).ok(), Some(Some(128)));
        assert!(with(ENV_ACCEPT_TALLY, "-8").is_err());
        assert!(with(ENV_LISTENER, "1").is_err());
        assert!(with(ENV_WORKER_ID, "0").is_err());
        assert!(with(ENV_STATS_SLOT, "8").is_err());
        assert!(with(ENV_WORKER_ID, "x").is_err());
        let missing = with(ENV_BACKEND, "").expect_err("the backend is always passed");
        assert!(missing.to_string().contains(ENV_BACKEND), "{missing}");
    }
}
