//! What the kernel says about sockets: a process's socket inodes, a
//! listener's accept queue (/proc/net/tcp, tcp6), a connection's unread and
//! unacknowledged bytes (sock_diag, SIOCOUTQ), and the migration counters
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
/// with this inode (`rx_queue` of its line in /proc/net/tcp, or tcp6 for an
/// IPv6 one).
pub fn accept_queue(inode: u64) -> Option<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|path| accept_queue_in(path, inode))
}

fn accept_queue_in(path: &str, inode: u64) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        let rx = fields.get(4)?.split(':').nth(1)?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// The bytes written on `stream` that its peer's kernel has not yet
/// acknowledged (SIOCOUTQ: unsent and unacknowledged): 0 once all of them
/// are in the peer's receive queue or read.
pub fn unacknowledged(stream: &std::net::TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int, which `n` is, for a valid socket fd.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(stream), libc::TIOCOUTQ, &mut n) };
    assert_eq!(r, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    n as usize
}

/// The bytes waiting unread on the server's side of the connection from
/// local port `client` to `server`, both on 127.0.0.1 (its receive queue);
/// `None` once there is no such connection. Asked of sock_diag for that one
/// socket: /proc/net/tcp lists every socket of the host, 60 ms a read with
/// the 68,000 a busy test machine holds in TIME_WAIT.
pub fn unread_by_server(server: u16, client: u16) -> Option<u64> {
    // linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h.
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const INET_DIAG_NOCOOKIE: u32 = !0;
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct SockId {
        sport: u16,
        dport: u16,
        src: [u32; 4],
        dst: [u32; 4],
        interface: u32,
        cookie: [u32; 2],
    }
    #[repr(C)]
    struct Request {
        header: libc::nlmsghdr,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct DiagMsg {
        family: u8,
        state: u8,
        timer: u8,
        retrans: u8,
        id: SockId,
        expires: u32,
        rqueue: u32,
        wqueue: u32,
        uid: u32,
        inode: u32,
    }
    let loopback = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        family: libc::AF_INET as u8,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states: !0,
        id: SockId {
            sport: server.to_be(),
            dport: client.to_be(),
            src: [loopback, 0, 0, 0],
            dst: [loopback, 0, 0, 0],
            interface: 0,
            cookie: [INET_DIAG_NOCOOKIE; 2],
        },
    };
    // SAFETY: socket() takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    assert!(fd >= 0, "sock_diag socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: send() reads `size_of::<Request>()` bytes of `request`, which it is.
    let sent = unsafe { libc::send(raw, (&request as *const Request).cast(), std::mem::size_of::<Request>(), 0) };
    assert!(sent >= 0, "sock_diag send: {}", std::io::Error::last_os_error());
    let mut reply = [0u64; 128];
    // SAFETY: recv() writes at most the 1 KiB `reply` holds.
    let got = unsafe { libc::recv(raw, reply.as_mut_ptr().cast(), std::mem::size_of_val(&reply), 0) };
    assert!(got >= 0, "sock_diag recv: {}", std::io::Error::last_os_error());
    let header_len = std::mem::size_of::<libc::nlmsghdr>();
    assert!(got as usize >= header_len, "sock_diag: a reply of {got} bytes");
    // SAFETY: `reply` holds at least a header, and is aligned for one (u64s).
    let header = unsafe { *(reply.as_ptr() as *const libc::nlmsghdr) };
    if header.nlmsg_type == NLMSG_ERROR {
        // SAFETY: an error message holds an errno (negative) after its header.
        let errno = unsafe { *(reply.as_ptr().cast::<u8>().add(header_len) as *const i32) };
        assert_eq!(errno, -libc::ENOENT, "sock_diag: {}", std::io::Error::from_raw_os_error(-errno));
        return None;
    }
    assert_eq!(header.nlmsg_type, SOCK_DIAG_BY_FAMILY, "sock_diag: a reply of type {}", header.nlmsg_type);
    assert!(got as usize >= header_len + std::mem::size_of::<DiagMsg>(), "sock_diag: a reply of {got} bytes");
    // SAFETY: the reply holds a whole `inet_diag_msg` after its header (checked
    // above), at an offset (16) aligned for its u32s.
    let message = unsafe { *(reply.as_ptr().cast::<u8>().add(header_len) as *const DiagMsg) };
    Some(u64::from(message.rqueue))
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
