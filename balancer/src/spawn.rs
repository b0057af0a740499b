//! Starting a worker: the master re-executes its own binary with the worker
//! role named in the environment and the channel, the stats block and (in
//! `shared` and `reuseport` modes) a listener at fixed fd numbers, as Node passes
//! `NODE_CHANNEL_FD` and `NODE_UNIQUE_ID`; the ids to switch to, if any, are in
//! the environment too.
//!
//! "Its own binary" is the image the master runs, opened once at start
//! ([`OwnImage`]), never the path it was started from: a file replaced on
//! disk (a build, a package upgrade) does not change what workers run, and
//! reload and restarts keep working.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ringmaster_engine::Backend;

use crate::config::WorkerExec;
use crate::privileges::{ENV_GID, ENV_GROUPS, ENV_UID};
use crate::systemd::activation::{ENV_LISTEN_FDNAMES, ENV_LISTEN_FDS, ENV_LISTEN_PID};

use crate::upgrade::env::{ENV_UPGRADE_ACTIVATED, ENV_UPGRADE_FDS, ENV_UPGRADE_FROM};

/// Environment variable naming the worker id (1-based); its presence makes the binary a worker.
pub const ENV_WORKER_ID: &str = "RINGMASTER_WORKER_ID";
/// Environment variable with the pid of the master that started the worker:
/// a process whose parent is another (a subprocess a worker's handler
/// starts, which inherits the environment) is not that worker.
pub const ENV_MASTER_PID: &str = "RINGMASTER_MASTER_PID";
/// Environment variable with the worker's CPU, or `none` when not pinned.
pub const ENV_CPU: &str = "RINGMASTER_CPU";
/// Environment variable with the number of slots in the stats block.
pub const ENV_STATS_SLOTS: &str = "RINGMASTER_STATS_SLOTS";
/// Environment variable with the stats slot this process writes (0-based).
pub const ENV_STATS_SLOT: &str = "RINGMASTER_STATS_SLOT";
/// Environment variable saying which listener is passed at [`LISTENER_FD`]:
/// `shared` (the master's, every worker's) or `own` (the worker slot's own
/// `SO_REUSEPORT` listener); absent when none is.
pub const ENV_LISTENER: &str = "RINGMASTER_LISTENER";
/// [`ENV_LISTENER`] for the master's shared listener.
pub const LISTENER_SHARED: &str = "shared";
/// [`ENV_LISTENER`] for a worker slot's own listener.
pub const LISTENER_OWN: &str = "own";
/// Environment variable with the backend the master chose (`uring` or
/// `epoll`): workers run on it without probing.
pub const ENV_BACKEND: &str = "RINGMASTER_BACKEND";

/// Environment variable with the byte offset, in the map passed at
/// [`ACCEPT_TALLY_FD`], of the count where the worker adds what it accepts
/// on its own listener (`reuseport --steer load`); absent when none is.
pub const ENV_ACCEPT_TALLY: &str = "RINGMASTER_ACCEPT_TALLY";

/// This process was started as a worker: its environment names a worker id
/// and, where it names the master that set it (every master since
/// 2026-12-06), that master is its parent. A worker's own subprocess
/// inherits the variables, and with them, until then, took itself for a
/// worker (a program built on the library exited 1: "fd 3 was not passed by
/// the master"), as Node's workers would without deleting `NODE_UNIQUE_ID`.
/// A worker whose master died before this is asked is told to stop
/// (`PR_SET_PDEATHSIG`).
///
/// The first time it says yes, the fds the master passed become
/// close-on-exec (`close_inherited_on_exec`): a library program asks its
/// role (`is_primary`, `Cluster::serve`) before anything else of the
/// cluster's, and may start a child of its own before `serve` takes them.
pub fn started_as_worker() -> bool {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    let worker =
        std::env::var_os(ENV_WORKER_ID).is_some() && started_by(std::env::var(ENV_MASTER_PID).ok().as_deref(), parent);
    if worker {
        close_inherited_on_exec();
    }
    worker
}

/// Marks the fds the master placed at their fixed numbers close-on-exec,
/// once per process: they are inherited (no `FD_CLOEXEC`) across the
/// worker's exec, and stayed so until the worker's `serve` took them, so a
/// child the program started before (a sidecar, or one its handler's
/// constructor started) kept the worker's lane, stats block and listener
/// open after the worker was gone: a listener held by a stray process goes
/// on filling a queue nobody serves. Only the numbers the environment says
/// were passed are touched: another may be the program's own.
fn close_inherited_on_exec() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let passed = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let listener = passed(ENV_LISTENER).then_some(LISTENER_FD);
        let tally = passed(ENV_ACCEPT_TALLY).then_some(ACCEPT_TALLY_FD);
        for fd in [Some(CHANNEL_FD), Some(STATS_FD), listener, tally].into_iter().flatten() {
            // SAFETY: F_GETFD and F_SETFD only read and set a descriptor's flags;
            // on a number that is not open both fail with EBADF and change nothing.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    });
}

/// Whether a process whose environment names `master` (if it names one)
/// and whose parent is `parent` was started by that master.
fn started_by(master: Option<&str>, parent: libc::pid_t) -> bool {
    match master {
        None => true,
        Some(master) => master.parse::<libc::pid_t>().is_ok_and(|master| master == parent),
    }
}

/// The worker's end of its channel.
pub const CHANNEL_FD: RawFd = 3;
/// The stats block (a memfd).
pub const STATS_FD: RawFd = 4;
/// The listening socket (`shared` and `reuseport` modes only).
pub const LISTENER_FD: RawFd = 5;
/// The map holding the accept tally (see [`ENV_ACCEPT_TALLY`]).
pub const ACCEPT_TALLY_FD: RawFd = 6;
/// Sources are moved at least this high before the fork, so placing them at
/// 3 to 6 in the child can never overwrite one with another.
const ABOVE_FIXED_FDS: RawFd = 10;

/// The binary the master runs, held open so that workers start from it
/// whatever happens to the file.
#[derive(Debug)]
pub struct OwnImage {
    /// Numbered above the fixed fds, so placing those in a child never covers it.
    file: OwnedFd,
    /// The path it was started from, for logs (the file there may since have changed).
    pub path: Option<PathBuf>,
}

impl OwnImage {
    /// Opens the running image (`/proc/self/exe`).
    pub fn open() -> io::Result<OwnImage> {
        let opened = File::open("/proc/self/exe")?;
        let file = dup_above(std::os::fd::AsFd::as_fd(&opened))?;
        Ok(OwnImage { file, path: std::env::current_exe().ok() })
    }

    /// A path that executes this image in a child that inherited the open
    /// file (close-on-exec is fine: exec resolves the path before it closes
    /// such fds).
    pub(crate) fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// What a new worker is given.
#[derive(Debug)]
pub struct WorkerLaunch<'a> {
    /// Worker id, 1-based.
    pub id: usize,
    /// CPU to pin to, if pinning.
    pub cpu: Option<usize>,
    /// The stats slot this process writes.
    pub stats_slot: usize,
    /// Slots in the stats block.
    pub stats_slots: usize,
    /// The worker's end of its channel.
    pub channel: BorrowedFd<'a>,
    /// The stats block.
    pub stats: BorrowedFd<'a>,
    /// The listener, in `shared` and `reuseport` modes.
    pub listener: Option<Inherited<'a>>,
    /// Where the worker counts what it accepts: a mappable fd and the
    /// count's byte offset in it (`reuseport --steer load`).
    pub accept_tally: Option<(BorrowedFd<'a>, usize)>,
    /// The kernel interface the worker's loop runs on.
    pub backend: Backend,
    /// The binary to run.
    pub image: &'a OwnImage,
    /// What every worker is executed with.
    pub exec: &'a WorkerExec,
}

/// A listener a worker inherits.
#[derive(Clone, Copy, Debug)]
pub enum Inherited<'a> {
    /// The master's listener, shared by every worker.
    Shared(BorrowedFd<'a>),
    /// The worker slot's own listener.
    Own(BorrowedFd<'a>),
}

impl<'a> Inherited<'a> {
    fn fd(self) -> BorrowedFd<'a> {
        match self {
            Inherited::Shared(fd) | Inherited::Own(fd) => fd,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Inherited::Shared(_) => LISTENER_SHARED,
            Inherited::Own(_) => LISTENER_OWN,
        }
    }
}

/// Starts a worker process; returns its pid. The binary is the master's own
/// image, never found by `argv[0]` (which is the worker's title).
pub fn spawn_worker(launch: &WorkerLaunch<'_>) -> io::Result<u32> {
    let channel = dup_above(launch.channel)?;
    let stats = dup_above(launch.stats)?;
    let listener = launch.listener.map(|l| dup_above(l.fd())).transpose()?;
    let tally = launch.accept_tally.map(|(fd, _)| dup_above(fd)).transpose()?;
    let placements: [(RawFd, RawFd); 4] = [
        (channel.as_raw_fd(), CHANNEL_FD),
        (stats.as_raw_fd(), STATS_FD),
        (listener.as_ref().map_or(-1, |l| l.as_raw_fd()), LISTENER_FD),
        (tally.as_ref().map_or(-1, |t| t.as_raw_fd()), ACCEPT_TALLY_FD),
    ];
    let master = std::process::id() as libc::pid_t;
    let mut command = Command::new(launch.image.exec_path());
    command
        .arg0(launch.exec.names.worker_title(launch.id))
        .args(&launch.exec.args)
        .env(ENV_BACKEND, launch.backend.name())
        .env(ENV_WORKER_ID, launch.id.to_string())
        .env(ENV_MASTER_PID, master.to_string())
        .env(ENV_CPU, launch.cpu.map_or_else(|| "none".to_string(), |c| c.to_string()))
        .env(ENV_STATS_SLOTS, launch.stats_slots.to_string())
        .env(ENV_STATS_SLOT, launch.stats_slot.to_string())
        .stdin(Stdio::null());
    if let Some(inherited) = launch.listener {
        command.env(ENV_LISTENER, inherited.name());
    } else {
        command.env_remove(ENV_LISTENER);
    }
    if let Some((_, offset)) = launch.accept_tally {
        command.env(ENV_ACCEPT_TALLY, offset.to_string());
    } else {
        command.env_remove(ENV_ACCEPT_TALLY);
    }
    // The names of fds an old master handed this one are not the worker's.
    // Nor are systemd's: the master took the sockets it passed.
    for name in [
        ENV_UID,
        ENV_GID,
        ENV_GROUPS,
        ENV_UPGRADE_FDS,
        ENV_UPGRADE_FROM,
        ENV_UPGRADE_ACTIVATED,
        ENV_LISTEN_FDS,
        ENV_LISTEN_PID,
        ENV_LISTEN_FDNAMES,
    ] {
        command.env_remove(name);
    }
    if let Some(credentials) = &launch.exec.credentials {
        command.envs(credentials.to_env());
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (dup2, prctl, getppid, sigprocmask): no lock
    // another thread of the master held at the fork (a wait for the packets
    // in flight, `in_flight.rs`) is ever taken in the child.
    unsafe {
        command.pre_exec(move || {
            for (from, to) in placements {
                if from >= 0 && libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // No orphans: if the master dies, the worker is told to drain.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != master {
                return Err(io::Error::other("master exited while the worker was starting"));
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(child.id())
}

/// A close-on-exec duplicate of `fd` numbered at least [`ABOVE_FIXED_FDS`].
fn dup_above(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    dup_at_least(fd, ABOVE_FIXED_FDS)
}

/// A close-on-exec duplicate of `fd` numbered at least `lowest`: a source
/// that can be placed at a number below `lowest` in a child without ever
/// being covered by another placement.
pub(crate) fn dup_at_least(fd: BorrowedFd<'_>, lowest: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd only creates a new descriptor.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, lowest) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Takes ownership of an fd the master placed at `number`, if it is there.
pub fn inherited_fd(number: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(number, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("fd {number} was not passed by the master (start ringmaster without {ENV_WORKER_ID})"),
        ));
    }
    // SAFETY: the master placed this fd here for the worker alone; nothing else in
    // this process refers to it, so the worker may own and close it.
    let fd = unsafe { OwnedFd::from_raw_fd(number) };
    // Already so since the role was first read (`started_as_worker`); kept for a caller that did not ask it.
    // SAFETY: setting FD_CLOEXEC on a valid fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::started_by;

    #[test]
    fn a_worker_is_the_child_of_the_master_its_environment_names() {
        assert!(started_by(Some("4242"), 4242), "the master's own worker");
        assert!(!started_by(Some("4242"), 5151), "a worker's subprocess, which inherited the environment");
        assert!(!started_by(Some("not a pid"), 4242));
        assert!(started_by(None, 5151), "a worker of a master from before the variable");
    }
}
