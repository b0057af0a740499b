//! Raising the open-file limit: every connection is an fd, and a soft limit
//! of 1024 would cap a worker far below `--max-conns`.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads a valid rlimit; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// The soft `RLIMIT_NOFILE` now (the engine reads it too: its workers size
/// their table of direct descriptors by it).
pub use ringmaster_engine::fd_limit;

/// Descriptors a worker needs besides its connections: stdio, the channel,
/// the stats block, the listener, the ring, the signalfd, and some room.
const WORKER_OVERHEAD_FDS: u64 = 32;

/// Open files a worker needs to hold `max_conns` connections.
pub fn fds_needed(max_conns: usize) -> u64 {
    max_conns as u64 + WORKER_OVERHEAD_FDS
}

/// The system-wide limit on open files (`fs.file-max`), if readable.
pub fn system_file_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/file-max").ok()?.trim().parse().ok()
}

/// The open-file limit, for log lines: `RLIMIT_NOFILE 64`.
pub fn fd_limit_text() -> String {
    match fd_limit() {
        Ok(limit) => format!("RLIMIT_NOFILE {limit}"),
        Err(e) => format!("RLIMIT_NOFILE unknown: {e}"),
    }
}

/// Warns at start when `--max-conns` cannot be reached: every worker is a
/// process with its own `RLIMIT_NOFILE` (`limit`), and the master in `rr`
/// mode holds a copy of each connection until a worker takes it.
pub fn warn_if_fds_fall_short(max_conns: usize, workers: usize, limit: u64) {
    let per_worker = fds_needed(max_conns);
    if per_worker > limit {
        crate::log!(warn:
            "--max-conns {max_conns} needs about {per_worker} open files per worker but RLIMIT_NOFILE is \
             {limit}: each worker will take about {} connections (the rest go to other workers, or get 503); \
             raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --max-conns",
            limit.saturating_sub(per_worker - max_conns as u64),
        );
    }
    let total = (max_conns as u64).saturating_mul(workers as u64);
    if let Some(system) = system_file_max().filter(|&max| total > max) {
        crate::log!(warn:
            "--max-conns {max_conns} x {workers} workers = {total} connections exceeds the system's \
             fs.file-max ({system})"
        );
    }
}
