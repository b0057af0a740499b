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

/// The soft `RLIMIT_NOFILE` now.
pub fn fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

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
