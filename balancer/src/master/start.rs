//! The master's start: what an old master handed down, the backend, the
//! open-file limit, the CPUs, the listening sockets, the control socket and
//! the stats block, then one process per worker.

use std::os::fd::AsFd;
use std::time::{Instant, SystemTime};

use ringmaster_engine::stats::CountersSnapshot;
use ringmaster_engine::{choose_backend, Backend, BackendChoice, StatsBlock};

use super::commands::ControlState;
use super::dispatch::Dispatch;
use super::metrics::MetricsState;
use super::notify::Notified;
use super::ops::SIGNALS;
use super::reload::Reload;
use super::upgrade::Upgrades;
use super::{sockets, supervise, take_over, Master, MAX_SLOTS, MAX_WORKERS, TICK};
use crate::config::{MasterConfig, Mode};
use crate::control::socket::SocketFile;
use crate::cpus::{allowed_cpus, choose_cpus};
use crate::error::{Context, Error, Result};
use crate::fd_reserve::FdReserve;
use crate::locked_memory::{raised_text, room_for_workers, short_text, Room};
use crate::metrics::MasterCounts;
use crate::modes::{balance_for, ListenAt};
use crate::reactor::{reactor_for, uring::CQ_ENTRIES};
use crate::signals::signal_fd;
use crate::spawn::OwnImage;
use crate::systemd::Notifier;
use crate::upgrade::inherit::Inherited;
use crate::upgrade::launch::upgrade_path;

impl Master {
    pub(super) fn start(config: MasterConfig) -> Result<Master> {
        // What an old master handed down (`upgrade`), owned before anything else opens an fd.
        let mut inherited = Inherited::from_env()?;
        // Workers start from the image this process runs, whatever later lands at its path.
        let image = OwnImage::open().context("cannot open the running binary (/proc/self/exe)")?;
        let upgrade_path = upgrade_path(config.program.as_deref(), &image);
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(Error::Config(format!("--workers must be between 1 and {MAX_WORKERS}")));
        }
        // Before the probe, whose ring counts as the workers' will.
        let choice = room_for_rings(&config)?;
        let (backend, fallback) = choose_backend(choice).map_err(Error::Backend)?;
        if let Some(why) = fallback {
            crate::log!(warn: "{why}");
        }
        // After the probe, whose want of room names RLIMIT_AS itself.
        let slots = reserved(MAX_SLOTS, "the table of worker process slots")?;
        let completions = reserved(CQ_ENTRIES as usize, "the completions its loop reads each turn")?;
        // Every slot's process and an upgrade's new master: it never grows.
        let reaped = reserved(MAX_SLOTS + 1, "the pids looked at on each child's exit")?;
        // Workers inherit the raised limit; failing to raise it is not fatal.
        match crate::rlimit::raise_fd_limit() {
            Ok(limit) => {
                // The ring's accepts keep their connections in its own table (`ring_socket.rs`).
                let ring_table = backend == Backend::Uring && matches!(config.mode, Mode::Shared | Mode::Reuseport);
                crate::rlimit::warn_if_fds_fall_short(config.engine.max_conns, config.workers, limit, ring_table)
            }
            Err(e) => crate::log!(warn: "cannot raise the open-file limit: {e}"),
        }
        let cpus = if config.pin { choose_cpus(config.cpus.as_deref(), &allowed_cpus())? } else { Vec::new() };
        let sockets = sockets::open(&config, inherited.as_mut())?;
        let (listener, local, activated) = (sockets.listener, sockets.local, sockets.activated);
        let upgraded = inherited.is_some();
        let handed_control = inherited.as_mut().and_then(Inherited::take_control);
        let control = match (config.control.as_deref(), handed_control) {
            (Some(path), Some((fd, file))) => {
                // From an old master that predates the word: the path's file now, as it uses it.
                let file = file.unwrap_or_else(|| SocketFile::at(path));
                Some(ControlState::inherited(fd, path, file)?)
            }
            (Some(path), None) => Some(ControlState::bind(path)?),
            (None, _) => None,
        };
        let handed_path = config.control.as_deref().filter(|_| control.is_some());
        let takeover = inherited.map(|inherited| take_over::take_over(inherited, local, handed_path));
        let signals = signal_fd(&SIGNALS).context("cannot set up signals")?;
        let (stats, stats_fd) = StatsBlock::create_shared(MAX_SLOTS).context("cannot create the stats block")?;
        let reactor = reactor_for(backend).context(format_args!("cannot start the {} event loop", backend.name()))?;
        let mut master = Master {
            reactor,
            backend,
            image,
            upgrade_path,
            listener,
            signals,
            stats,
            fd_reserve: FdReserve::new(stats_fd.as_fd()),
            stats_fd,
            cpus,
            slots,
            workers: Vec::with_capacity(config.workers),
            dispatch: Dispatch::new(balance_for(
                config.mode,
                ListenAt { local, backlog: config.backlog },
                sockets.slots,
                sockets.steering,
                takeover.is_some(),
            )),
            reload: Reload::default(),
            control,
            metrics: sockets.metrics.map(|(fd, _)| MetricsState::new(fd)),
            upgrades: Upgrades::taking_over(takeover),
            lame_duck: None,
            stopping: None,
            ever_ready: false,
            cannot_start: None,
            counts: MasterCounts::default(),
            retired_counts: CountersSnapshot::default(),
            started_at: SystemTime::now(),
            activated,
            notifier: Notifier::from_env(upgraded),
            notified: Notified::default(),
            listening: None,
            completions,
            next_tick: Instant::now() + TICK,
            next_steer: Instant::now(),
            timer_outdated: false,
            heartbeats_watched: Instant::now(),
            steer_facts: Vec::new(),
            steer_taken: Vec::new(),
            in_flight: crate::in_flight::PacketsInFlight::new(),
            letting_go: Vec::new(),
            reaped,
            config,
        };
        for _ in 0..master.config.workers {
            master.add_worker().context("cannot start a worker")?;
            if let Some(id) = master.workers.last().map(|w| w.id) {
                master.set_ready_deadline(id, "start");
            }
        }
        master.let_go_of_unused_slot_listeners();
        master.listening = Some((local, Instant::now() + supervise::ANNOUNCE_AFTER));
        Ok(master)
    }
}

/// A vector with room for `count` items, made once at start so that the
/// loop never reallocates it: where the address space is too tight for it
/// (a `ulimit -v` of a few MiB), one error line that says which, rather
/// than an abort with a backtrace.
fn reserved<T>(count: usize, what: &str) -> Result<Vec<T>> {
    let mut items = Vec::new();
    items.try_reserve_exact(count).map_err(|e| {
        let kib = count * std::mem::size_of::<T>() / 1024;
        Error::Config(format!("cannot reserve {kib} KiB for {what}: {e}"))
    })?;
    Ok(items)
}

/// Unless `--backend epoll`, room under `RLIMIT_MEMLOCK` for the workers'
/// io_uring rings where the kernel counts them (see `locked_memory.rs`),
/// made before the probe: another master of the same user may hold rings
/// already. The backend to probe for: where there is no room and none can
/// be made, `--backend auto` serves with epoll and `uring` stops.
fn room_for_rings(config: &MasterConfig) -> Result<BackendChoice> {
    if config.backend == BackendChoice::Epoll {
        return Ok(config.backend);
    }
    let workers = config.workers;
    let room = room_for_workers(workers, &config.engine)
        .map_err(|e| Error::Config(format!("cannot read or set RLIMIT_MEMLOCK: {e}")))?;
    match room {
        Room::Enough => Ok(config.backend),
        Room::Raised { from, to } => {
            crate::log!("{}", raised_text(workers, from, to));
            Ok(config.backend)
        }
        Room::Short { limit, need } => {
            let why = short_text(workers, limit, need);
            let advice = "raise it (ulimit -l, systemd LimitMEMLOCK=) or start the master as root with CAP_IPC_LOCK, which a container may drop";
            match config.backend {
                BackendChoice::Auto => {
                    crate::log!(warn: "{why}: serving with epoll ({advice})");
                    Ok(BackendChoice::Epoll)
                }
                _ => Err(Error::Config(format!("--backend uring: {why}: {advice}, or use --backend epoll"))),
            }
        }
    }
}
