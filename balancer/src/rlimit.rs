//! Raising the open-file limit: every connection is an fd, and a soft limit
//! of 1024 would cap a worker far below `--max-conns`. Reading and setting
//! a limit, for the locked memory's too (`locked_memory.rs`).

use std::io;

/// This process's `resource` limit, soft and hard.
pub fn get(resource: libc::__rlimit_resource_t) -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid rlimit.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Sets this process's `resource` limit; the kernel refuses (`EPERM`) what
/// the process may not set.
pub fn set(resource: libc::__rlimit_resource_t, limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(resource, limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = get(libc::RLIMIT_NOFILE)?;
    if limit.rlim_cur < limit.rlim_max {
        // Raising the soft limit up to the hard one is always allowed.
        limit.rlim_cur = limit.rlim_max;
        set(libc::RLIMIT_NOFILE, &limit)?;
    }
    Ok(limit.rlim_cur)
}

/// The soft `RLIMIT_NOFILE` now (the engine reads it too: its workers size
/// their table of direct descriptors by it).
pub use ringmaster_engine::fd_limit;

/// About how many connections a worker holds under an open-file limit of
/// `limit`, if fewer than `max_conns`: what it reserves for and publishes
/// as its capacity (see [`ringmaster_engine::reach`]). A worker whose
/// io_uring accepts make direct descriptors (`ring_table`: `shared`,
/// `reuseport`) keeps them in its ring's table, as large as the limit, not
/// in its process's; any other worker keeps one descriptor per connection
/// beside its own.
pub fn worker_holds(max_conns: usize, limit: u64, ring_table: bool) -> Option<u64> {
    let holds = ringmaster_engine::reach::conns_within(max_conns, limit, ring_table);
    (holds < max_conns).then_some(holds as u64)
}

/// The system-wide limit on open files (`fs.file-max`), if readable.
pub fn system_file_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/file-max").ok()?.trim().parse().ok()
}

/// The open-file limit, for log lines: `RLIMIT_NOFILE 64`.
pub fn fd_limit_text() -> String {
    limit_text(fd_limit())
}

/// Process `pid`'s soft open-file limit, which need not be the master's (an
/// operator's `prlimit`): read with `prlimit(2)`, which needs no descriptor.
pub fn fd_limit_of(pid: u32) -> io::Result<u64> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit with no new limit only writes the old one into a valid rlimit.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Process `pid`'s open-file limit, for log lines.
pub fn fd_limit_text_of(pid: u32) -> String {
    limit_text(fd_limit_of(pid))
}

fn limit_text(limit: io::Result<u64>) -> String {
    match limit {
        Ok(limit) => format!("RLIMIT_NOFILE {limit}"),
        Err(e) => format!("RLIMIT_NOFILE unknown: {e}"),
    }
}

/// Warns at start when `--max-conns` cannot be reached: every worker is a
/// process with its own `RLIMIT_NOFILE` (`limit`), and the master in `rr`
/// mode holds a copy of each connection until a worker takes it.
/// `ring_table`: see [`worker_holds`].
pub fn warn_if_fds_fall_short(max_conns: usize, workers: usize, limit: u64, ring_table: bool) {
    if let Some(holds) = worker_holds(max_conns, limit, ring_table) {
        crate::log!(warn:
            "--max-conns {max_conns} is more than RLIMIT_NOFILE {limit} allows: each worker will hold about \
             {holds} connections (when every worker is full, new ones get 503, or wait in reuseport mode); \
             raise the limit (ulimit -n, systemd LimitNOFILE=) or lower --max-conns",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_holds_what_its_descriptors_allow() {
        assert_eq!(worker_holds(16384, 32, false), Some(22), "one fd per connection beside its own");
        assert_eq!(worker_holds(16384, 32, true), Some(32), "its ring's table is as large as the limit");
        assert_eq!(worker_holds(100, 1 << 20, false), None, "--max-conns is reached");
        assert_eq!(worker_holds(100, 100, true), None);
    }

    #[test]
    fn another_process_limit_is_read_without_a_descriptor() {
        let own = fd_limit().expect("own limit");
        assert_eq!(fd_limit_of(std::process::id()).expect("prlimit on itself"), own);
        assert!(fd_limit_of(u32::MAX).is_err(), "no such process");
    }
}
