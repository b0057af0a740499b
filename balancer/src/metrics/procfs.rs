//! What `/proc` says about a process: CPU seconds, resident and virtual
//! memory, threads (one read of `/proc/PID/stat`), and the master's open
//! fds. procfs files are made in memory when read: reading one never waits
//! for a device, so the master's loop may do it when a page is asked for.

use std::io;

use nix::unistd::{sysconf, SysconfVar};

/// One process's resource use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcStat {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/PID/stat`; `None` when the process is gone or the file
/// cannot be read or understood.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = proc_stat_text(pid)?;
    parse_stat(&text, clock_ticks(), page_size())
}

/// `/proc/PID/stat`'s text, if the process exists. Read as bytes: the
/// command name in it is whatever the process was named (the first 15 bytes
/// of its file's name, cut anywhere), and a name that is not UTF-8 made the
/// process look gone (until 2026-12-07).
pub(crate) fn proc_stat_text(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Open fds of this process (entries of `/proc/self/fd`, less the one
/// reading it).
pub fn open_fds() -> io::Result<u64> {
    let entries = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    Ok(entries.saturating_sub(1))
}

fn clock_ticks() -> u64 {
    sysconf(SysconfVar::CLK_TCK).ok().flatten().and_then(|n| u64::try_from(n).ok()).unwrap_or(100)
}

fn page_size() -> u64 {
    sysconf(SysconfVar::PAGE_SIZE).ok().flatten().and_then(|n| u64::try_from(n).ok()).unwrap_or(4096)
}

/// Parses a `/proc/PID/stat` line (proc(5)): the fields after the command
/// name, which is in parentheses and may hold spaces and parentheses itself.
fn parse_stat(text: &str, ticks_per_second: u64, page_size: u64) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here: field N is index N - 3.
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime) = (field(14)?, field(15)?);
    Some(ProcStat {
        cpu_seconds: (utime + stime) as f64 / ticks_per_second.max(1) as f64,
        rss_bytes: field(24)? * page_size,
        virtual_bytes: field(23)?,
        threads: field(20)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_after_a_name_with_spaces_and_parentheses() {
        let line = "4242 (rm-worker-1 (x) y) S 4241 4241 4241 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 3 0 \
                    123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let stat = parse_stat(line, 100, 4096).expect("parses");
        assert_eq!(stat, ProcStat { cpu_seconds: 3.0, rss_bytes: 2560 * 4096, virtual_bytes: 104_857_600, threads: 3 });
        assert_eq!(parse_stat("4242 (cut", 100, 4096), None);
        assert_eq!(parse_stat("4242 (x) S 1 2", 100, 4096), None);
    }

    #[test]
    fn this_process() {
        let stat = proc_stat(std::process::id()).expect("our own stat");
        assert!(stat.rss_bytes > 0 && stat.threads >= 1, "{stat:?}");
        assert!(open_fds().expect("fd count") >= 3);
        assert_eq!(proc_stat(u32::MAX), None);
    }
}
