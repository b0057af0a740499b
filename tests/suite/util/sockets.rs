//! What the kernel says about sockets: a process's socket inodes, a
//! listener's accept queue, a connection's unread and unacknowledged bytes,
//! whether one is open, the CLOSE_WAITs on a port (sock_diag, SIOCOUTQ),
//! and the migration counters (/proc/net/netstat).

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
/// with this inode, IPv4 or IPv6 (sock_diag's `rqueue` for a listener);
/// `None` if no listener has it.
///
/// Asked of sock_diag for the listening sockets only: /proc/net/tcp lists
/// every socket of the host, and with the 37,000 a loaded test machine
/// holds in TIME_WAIT a read of it and tcp6 took 2 to 12 s (2026-12-07,
/// two CPU burners beside the suite): a test that looked once per client
/// let a stopped worker's 30 s watchdog run out, and the 2 s and 10 s
/// waits on a queue could end before their first look did.
pub fn accept_queue(inode: u64) -> Option<u64> {
    [libc::AF_INET, libc::AF_INET6].into_iter().find_map(|family| {
        let listeners = sock_diag(family as u8, 1 << TCP_LISTEN, SockId::ANY, true).ok()?;
        listeners.iter().find(|m| u64::from(m.inode) == inode).map(|m| u64::from(m.rqueue))
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
/// socket: /proc/net/tcp lists every socket of the host (see [`accept_queue`]).
pub fn unread_by_server(server: u16, client: u16) -> Option<u64> {
    tcp_on_loopback(server, client).map(|m| u64::from(m.rqueue))
}

/// True while the kernel holds a TCP socket on 127.0.0.1 from local port
/// `from` to port `to` (in any state, TIME_WAIT included; not once closed).
pub fn socket_open(from: u16, to: u16) -> bool {
    tcp_on_loopback(from, to).is_some()
}

/// sock_diag's record of the TCP socket on 127.0.0.1 from local port
/// `local` to port `remote`, if the kernel holds one.
fn tcp_on_loopback(local: u16, remote: u16) -> Option<DiagMsg> {
    let loopback = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let id = SockId {
        sport: local.to_be(),
        dport: remote.to_be(),
        src: [loopback, 0, 0, 0],
        dst: [loopback, 0, 0, 0],
        ..SockId::ANY
    };
    match sock_diag(libc::AF_INET as u8, !0, id, false) {
        Ok(found) => found.first().copied(),
        Err(errno) if errno == libc::ENOENT => None,
        Err(errno) => panic!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)),
    }
}

// linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h, net/tcp_states.h.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_NOCOOKIE: u32 = !0;
const TCP_LISTEN: u32 = 10;
const TCP_SYN_RECV: u32 = 3;
const TCP_CLOSE_WAIT: u32 = 8;

/// `struct inet_diag_sockid`.
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

impl SockId {
    /// No socket in particular (what a dump asks with).
    const ANY: SockId =
        SockId { sport: 0, dport: 0, src: [0; 4], dst: [0; 4], interface: 0, cookie: [INET_DIAG_NOCOOKIE; 2] };
}

/// `struct inet_diag_req_v2` behind its netlink header.
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

/// `struct inet_diag_msg`.
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

/// Asks sock_diag about the TCP sockets of `family` in `states` (a bit per
/// state): with `dump`, every one (the kernel walks only the listening
/// table when `states` is listening alone); without, the one `id` names.
/// The records, or the errno the kernel answered (`ENOENT`: no such socket).
fn sock_diag(family: u8, states: u32, id: SockId, dump: bool) -> Result<Vec<DiagMsg>, i32> {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let flags = libc::NLM_F_REQUEST | if dump { libc::NLM_F_DUMP } else { 0 };
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: flags as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        family,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states,
        id,
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
    let header_len = std::mem::size_of::<libc::nlmsghdr>();
    let mut found = Vec::new();
    // u64s: aligned for the headers and records read from it.
    let mut reply = vec![0u64; 4096];
    loop {
        // SAFETY: recv() writes at most the 32 KiB `reply` holds.
        let got = unsafe { libc::recv(raw, reply.as_mut_ptr().cast(), reply.len() * 8, 0) };
        assert!(got >= 0, "sock_diag recv: {}", std::io::Error::last_os_error());
        let got = got as usize;
        let mut at = 0;
        // Each datagram holds whole messages, each at a 4-byte boundary.
        while at + header_len <= got {
            // SAFETY: a whole header lies at `at` (checked above), 4-byte
            // aligned (netlink's alignment, and `reply` is u64s), as nlmsghdr needs.
            let header = unsafe { *(reply.as_ptr().cast::<u8>().add(at) as *const libc::nlmsghdr) };
            let len = header.nlmsg_len as usize;
            assert!(len >= header_len && at + len <= got, "sock_diag: a message of {len} bytes at {at} of {got}");
            match header.nlmsg_type {
                NLMSG_DONE => return Ok(found),
                NLMSG_ERROR => {
                    assert!(len >= header_len + 4, "sock_diag: an error of {len} bytes");
                    // SAFETY: an error message holds an errno (negative) after its header, within `len`.
                    let errno = unsafe { *(reply.as_ptr().cast::<u8>().add(at + header_len) as *const i32) };
                    return if errno == 0 { Ok(found) } else { Err(-errno) };
                }
                SOCK_DIAG_BY_FAMILY => {
                    assert!(len >= header_len + std::mem::size_of::<DiagMsg>(), "sock_diag: a record of {len} bytes");
                    // SAFETY: the message holds a whole `inet_diag_msg` after its
                    // header (checked above), 4-byte aligned, as its u32s need.
                    found.push(unsafe { *(reply.as_ptr().cast::<u8>().add(at + header_len) as *const DiagMsg) });
                }
                other => panic!("sock_diag: a reply of type {other}"),
            }
            at += (len + 3) & !3;
        }
        if !dump {
            return Ok(found);
        }
    }
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

/// How many connections wait in the accept queues of the sockets listening
/// on local port `port` (IPv4 or IPv6), together; `None` while none listens.
pub fn queued_on_port(port: u16) -> Option<u64> {
    let id = SockId { sport: port.to_be(), ..SockId::ANY };
    let mut listening = false;
    let mut queued = 0;
    for family in [libc::AF_INET, libc::AF_INET6] {
        let found = sock_diag(family as u8, 1 << TCP_LISTEN, id, true)
            .unwrap_or_else(|errno| panic!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)));
        for m in found.iter().filter(|m| u16::from_be(m.id.sport) == port) {
            listening = true;
            queued += u64::from(m.rqueue);
        }
    }
    listening.then_some(queued)
}

/// How many handshakes are under way (`SYN-RECV`) on local port `port`, IPv4.
pub fn handshakes_on_port(port: u16) -> usize {
    let id = SockId { sport: port.to_be(), ..SockId::ANY };
    let under_way = sock_diag(libc::AF_INET as u8, 1 << TCP_SYN_RECV, id, true)
        .unwrap_or_else(|errno| panic!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)));
    under_way.iter().filter(|m| u16::from_be(m.id.sport) == port).count()
}

/// True while a TCP socket listens on local port `port` (IPv4 or IPv6).
pub fn listening_on(port: u16) -> bool {
    listeners_on_port(port) > 0
}

/// How many TCP sockets listen on local port `port` (IPv4 and IPv6): one
/// per listener of a `SO_REUSEPORT` group.
pub fn listeners_on_port(port: u16) -> usize {
    let id = SockId { sport: port.to_be(), ..SockId::ANY };
    [libc::AF_INET, libc::AF_INET6]
        .iter()
        .map(|&family| {
            let listening = sock_diag(family as u8, 1 << TCP_LISTEN, id, true)
                .unwrap_or_else(|errno| panic!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)));
            listening.iter().filter(|m| u16::from_be(m.id.sport) == port).count()
        })
        .sum()
}

/// A client connected to `addr` (IPv4) that holds back its handshake's
/// last ACK until it first sends, or its delayed-ACK timer fires (200 ms):
/// its connect has returned, and on the server's side the handshake is
/// still under way (`SYN-RECV`), as for a client whose ACK is slow to come.
/// The kernel holds it so for a socket with `TCP_DEFER_ACCEPT` set before
/// its connect (`tcp_rcv_synsent_state_process` saves that ACK).
pub fn connect_holding_the_last_ack(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let hold: libc::c_int = 1;
    set_socket_option(&fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, &hold)?;
    socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::TcpStream::from(fd))
}

/// setsockopt(2) of option `name` at `level` to `value`, which must be the
/// option's C type (any pointer in it valid for the call).
fn set_socket_option<T>(
    fd: &std::os::fd::OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `value` lives across the call, which copies the `size_of::<T>()`
    // bytes it points to (and what its pointers point to, valid as the caller says).
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How many TCP sockets on local port `port` wait in CLOSE_WAIT: the peer
/// has closed and the process holding them has not (IPv4; asked of
/// sock_diag, which the kernel filters by state, not /proc/net/tcp: see
/// [`accept_queue`]).
pub fn close_waits_on_port(port: u16) -> usize {
    let waiting = sock_diag(libc::AF_INET as u8, 1 << TCP_CLOSE_WAIT, SockId::ANY, true)
        .unwrap_or_else(|errno| panic!("sock_diag: {}", std::io::Error::from_raw_os_error(errno)));
    waiting.iter().filter(|m| u16::from_be(m.id.sport) == port).count()
}

/// A client whose handshake with `addr` (IPv4) never completes while it is
/// held: its socket drops every packet that comes to it (a socket filter),
/// the server's SYN-ACK and each retransmission of it, so it never sends
/// its last ACK. On the server's side the handshake stays under way
/// (`SYN-RECV`) until the server gives up on it (its SYN-ACK retries, a
/// minute), as for a client gone quiet mid-handshake.
pub fn connect_never_completing(addr: std::net::SocketAddr) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, flags, None)?;
    let mut drop_all = [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: 0 }];
    // The instruction `program` points to lives across the call, which copies it.
    let program = libc::sock_fprog { len: 1, filter: drop_all.as_mut_ptr() };
    set_socket_option(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &program)?;
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Err(nix::errno::Errno::EINPROGRESS) => Ok(fd),
        Ok(()) => Err(std::io::Error::other("the connect completed: the filter let the SYN-ACK by")),
        Err(e) => Err(e.into()),
    }
}
