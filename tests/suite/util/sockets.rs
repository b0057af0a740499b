//! What the kernel says about sockets: a process's socket inodes, a
//! listener's accept queue (/proc/net/tcp), and the migration counters
//! (/proc/net/netstat).

use std::collections::BTreeSet;

/// The socket inode behind `fd` of process `pid` (`socket:[N]`).
pub fn socket_inode(pid: u32, fd: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Every socket inode process `pid` holds.
pub fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return BTreeSet::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter_map(|fd| socket_inode(pid, fd)).collect()
}

/// How many connections wait in the accept queue of the listening socket
/// with this inode (`rx_queue` of its line in /proc/net/tcp).
pub fn accept_queue(inode: u64) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        let rx = fields.get(4)?.split(':').nth(1)?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// Waits (up to 10 s) until the listening socket `inode` has `at_least`
/// connections queued; how many it has then.
pub fn wait_queued(inode: u64, at_least: u64) -> u64 {
    let mut queued = 0;
    super::eventually(std::time::Duration::from_secs(10), || {
        queued = accept_queue(inode).unwrap_or(0);
        queued >= at_least
    });
    queued
}

/// `TCPMigrateReqSuccess` and `TCPMigrateReqFailure` from /proc/net/netstat.
pub fn migrations() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (Some(names), Some(values)) = (lines.first(), lines.get(1)) else { return (0, 0) };
    let find = |key: &str| {
        let at = names.split_whitespace().position(|n| n == key)?;
        values.split_whitespace().nth(at)?.parse().ok()
    };
    (find("TCPMigrateReqSuccess").unwrap_or(0), find("TCPMigrateReqFailure").unwrap_or(0))
}

/// How many TCP sockets on local port `port` wait in CLOSE_WAIT: the peer
/// has closed and the process holding them has not (/proc/net/tcp, IPv4).
pub fn close_waits_on_port(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port =
                fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"08")
        })
        .count()
}
