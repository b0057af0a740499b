//! The listening sockets the master owns: binding one, taking over one an
//! old master handed down (`upgrade`), and the key each is known by. Every
//! mode but `reuseport` uses one listener; `reuseport` binds an anchor that
//! holds the port without listening, plus one `SO_REUSEPORT` listener per
//! worker slot.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

/// Which of the master's listening sockets one is: the key it is handed to a
/// new master under (`upgrade`), so each lands where the old one used it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListenerKey {
    /// The master's one listening socket (`rr`, `least`, `shared`), or the
    /// bound anchor of a `reuseport` group.
    Main,
    /// The listening socket kept for one worker slot (a mode where each slot
    /// has its own `SO_REUSEPORT` listener).
    Slot(usize),
    /// The metrics endpoint's (`--metrics`).
    Metrics,
}

impl fmt::Display for ListenerKey {
    /// `listen`, or `listen.SLOT`: the name in `RINGMASTER_UPGRADE_FDS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerKey::Main => f.write_str("listen"),
            ListenerKey::Slot(slot) => write!(f, "listen.{slot}"),
            ListenerKey::Metrics => f.write_str("metrics"),
        }
    }
}

impl ListenerKey {
    /// The key [`Display`](fmt::Display) writes as `name`, if any.
    pub fn from_name(name: &str) -> Option<ListenerKey> {
        if name == "metrics" {
            return Some(ListenerKey::Metrics);
        }
        match name.strip_prefix("listen")? {
            "" => Some(ListenerKey::Main),
            rest => rest.strip_prefix('.')?.parse().ok().map(ListenerKey::Slot),
        }
    }
}

/// Binds `addr` with `SO_REUSEADDR` and `TCP_NODELAY` (inherited by accepted
/// sockets) and listens with `backlog`; returns the socket and the address it got.
///
/// Port 0: the kernel picks one for a first socket, which holds it while
/// the listener is bound to it by number, and is closed. A port the kernel
/// picked for the listener itself is not locked to it: once a stop shuts
/// it (`SHUT_RD`, `tcp_set_state(TCP_CLOSE)` → `inet_put_port`) the port
/// went back to the kernel for the rest of the drain, and another program
/// bound it (without `SO_REUSEADDR`) or was given it (until 2026-12-08,
/// `supervisor_stop_port.rs`). Bound by number, it keeps it until its close.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    if addr.port() != 0 {
        return start_listening(bound(addr, false)?, backlog);
    }
    // Both have `SO_REUSEADDR` and neither listens: the second bind to
    // the port is allowed, and nobody else can take it in between.
    let picker = bound(addr, false)?;
    let fd = bound(local_addr(&picker)?, false)?;
    drop(picker);
    start_listening(fd, backlog)
}

/// Binds `addr` with `SO_REUSEPORT` without listening: the anchor that holds
/// the port (and says which it is, when 0 was asked for) while each worker
/// slot's listener joins it with [`listen_reuseport`]. Not listening, it is
/// in no accept group: the kernel never queues a connection on it.
pub fn bind_reuseport_anchor(addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = bound(addr, true)?;
    let local = local_addr(&fd)?;
    Ok((fd, local))
}

/// A listener on `local` (the anchor's address) in its `SO_REUSEPORT` group:
/// the kernel spreads new connections over the group's listeners by a hash
/// of their addresses and ports.
pub fn listen_reuseport(local: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fd = bound(local, true)?;
    Ok(start_listening(fd, backlog)?.0)
}

fn bound(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    if addr.is_ipv6() {
        // Dual-stack, as Node's `listen('::')` (libuv clears the option unless
        // asked for `ipv6Only`), whatever `net.ipv6.bindv6only` says: `[::]`
        // takes IPv4 clients too, as IPv4-mapped addresses. Left to the
        // sysctl, the same `--bind` would take them on one host and refuse
        // them on the next. (nginx's `listen [::]` sets it the other way.)
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    }
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuseport {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| explain_bind(e, addr))?;
    Ok(fd)
}

/// A bind's error, said plainly where the kernel's says nothing of why: a
/// link-local IPv6 address (`fe80::/10`) without a scope id names no
/// interface, and the kernel answers `EINVAL`.
fn explain_bind(e: nix::Error, addr: SocketAddr) -> io::Error {
    match addr {
        SocketAddr::V6(v6) if e == nix::Error::EINVAL && v6.scope_id() == 0 && v6.ip().is_unicast_link_local() => {
            let (ip, port) = (v6.ip(), v6.port());
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a link-local address needs its interface, as [{ip}%eth0]:{port} or by index [{ip}%2]:{port}"),
            )
        }
        _ => e.into(),
    }
}

fn start_listening(fd: OwnedFd, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    // The kernel caps the backlog at its `net.core.somaxconn`, which may be
    // raised past libc's SOMAXCONN (4096): nix's `Backlog` refuses more than
    // that constant, so the call is made directly and the cap left to the kernel.
    // SAFETY: listen takes no pointers; `fd` is a bound socket we own.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog.max(1)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let listener = TcpListener::from(fd);
    let local = listener.local_addr()?;
    Ok((OwnedFd::from(listener), local))
}

fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    let local = socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())?;
    if let Some(v4) = local.as_sockaddr_in() {
        return Ok(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = local.as_sockaddr_in6().ok_or_else(|| io::Error::other("it has no IP address"))?;
    // With its scope id: a link-local anchor's slot listeners bind where it
    // is, interface and all (without it, their bind fails: `EINVAL`).
    Ok(SocketAddr::V6((*v6).into()))
}

/// Where a socket handed down must be: on `addr`'s IP, and on its port
/// unless that is 0 (the old master then got one from the kernel).
fn check_where(local: SocketAddr, addr: SocketAddr) -> io::Result<()> {
    if local.ip() != addr.ip() || (addr.port() != 0 && local.port() != addr.port()) {
        return Err(io::Error::other(format!("it is bound to {local}, not to {addr}")));
    }
    Ok(())
}

/// Takes over a `reuseport` anchor an old master handed down: a TCP socket
/// bound to `addr` with `SO_REUSEPORT`, not listening. Returns it and its address.
pub fn adopt_anchor(fd: OwnedFd, addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    if socket::getsockopt(&fd, sockopt::SockType)? != SockType::Stream
        || socket::getsockopt(&fd, sockopt::AcceptConn)?
        || !socket::getsockopt(&fd, sockopt::ReusePort)?
    {
        return Err(io::Error::other("it is not a bound SO_REUSEPORT stream socket that does not listen"));
    }
    let local = local_addr(&fd)?;
    check_where(local, addr)?;
    Ok((fd, local))
}

/// Takes over a listening socket an old master handed down: it must be a
/// TCP socket listening on `addr` (any port when `addr`'s is 0, as the old
/// master then got one from the kernel; any address at all when `addr` is
/// `None`: systemd chose it). Returns it and its address; its queue of
/// connections not yet accepted comes with it.
pub fn adopt(fd: OwnedFd, addr: Option<SocketAddr>) -> io::Result<(OwnedFd, SocketAddr)> {
    if !socket::getsockopt(&fd, sockopt::AcceptConn)? || socket::getsockopt(&fd, sockopt::SockType)? != SockType::Stream
    {
        return Err(io::Error::other("it is not a listening stream socket"));
    }
    let listener = TcpListener::from(fd);
    let local = listener.local_addr()?;
    if let Some(addr) = addr {
        check_where(local, addr)?;
    }
    Ok((OwnedFd::from(listener), local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_names() {
        for key in [ListenerKey::Main, ListenerKey::Slot(0), ListenerKey::Slot(17), ListenerKey::Metrics] {
            assert_eq!(ListenerKey::from_name(&key.to_string()), Some(key));
        }
        for bad in ["", "listen.", "listen.x", "listener", "listen.1.2", "control"] {
            assert_eq!(ListenerKey::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_port_the_kernel_picked_stays_the_listeners_once_it_stops_listening() {
        let (fd, local) = listen("127.0.0.1:0".parse().unwrap(), 16).expect("listen");
        assert_ne!(local.port(), 0);
        crate::reactor::sys::stop_listening(fd.as_raw_fd()).expect("the shut");
        let other =
            socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
        let taken = socket::bind(other.as_raw_fd(), &SockaddrStorage::from(local));
        assert_eq!(taken, Err(nix::Error::EADDRINUSE), "another socket bound {local} while it was held");
    }

    #[test]
    fn a_handed_down_listener_must_listen_where_bind_says() {
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (fd, local) = listen(any_port, 16).unwrap();
        let (fd, adopted) = adopt(fd, Some(any_port)).expect("port 0 takes the port the kernel gave");
        assert_eq!(adopted, local);
        let (fd, _) = adopt(fd, Some(local)).expect("the same address");
        let elsewhere: SocketAddr = "127.0.0.2:0".parse().unwrap();
        let (fd, _) = adopt(fd, None).expect("any address: systemd chose it");
        assert!(adopt(fd, Some(elsewhere)).is_err());
        let unbound = OwnedFd::from(std::net::UdpSocket::bind(any_port).unwrap());
        assert!(adopt(unbound, Some(any_port)).is_err(), "not a listening stream socket");
    }

    /// The backlog a listening socket got from `listen(2)`: `TCP_INFO`
    /// gives a listener's `sk_max_ack_backlog` as `tcpi_sacked`.
    fn kernel_backlog(listener: &OwnedFd) -> u32 {
        // SAFETY: tcp_info is plain integers, for which all zeroes is a value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`, which is that large.
        let ret = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(ret, 0, "TCP_INFO: {}", io::Error::last_os_error());
        info.tcpi_sacked
    }

    #[test]
    fn a_backlog_above_the_libc_constant_reaches_the_kernel() {
        // net.core.somaxconn is the kernel's cap, per network namespace: raised
        // in one of this thread's own (root only), it leaves the machine's alone.
        let got = std::thread::spawn(|| {
            // SAFETY: unshare takes no pointers; it moves this thread alone
            // into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            std::fs::write("/proc/sys/net/core/somaxconn", "65535").ok()?;
            let (fd, _) = listen("0.0.0.0:0".parse().unwrap(), 10_000).expect("listen");
            Some(kernel_backlog(&fd))
        })
        .join()
        .expect("the namespaced thread");
        let Some(backlog) = got else {
            eprintln!("skipped: needs a network namespace of its own (root) to raise net.core.somaxconn");
            return;
        };
        // nix's `Backlog` refuses more than libc's SOMAXCONN (4096), and
        // was clamped to it, whatever the kernel allows.
        assert_eq!(backlog, 10_000, "the backlog asked for, under a somaxconn of 65535");
    }

    #[test]
    fn a_reuseport_anchor_holds_the_port_and_is_handed_down_as_one() {
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (anchor, local) = bind_reuseport_anchor(any_port).unwrap();
        let slot = listen_reuseport(local, 16).expect("a slot's listener joins the anchor's port");
        assert!(adopt(anchor.try_clone().unwrap(), Some(local)).is_err(), "the anchor does not listen");
        let (_, adopted) = adopt_anchor(anchor, any_port).expect("an anchor");
        assert_eq!(adopted, local);
        assert!(adopt_anchor(slot, local).is_err(), "a listening socket is no anchor");
    }

    /// `[::]` takes IPv4 clients (dual-stack) even where the host says IPv6
    /// sockets are IPv6-only by default (`net.ipv6.bindv6only = 1`): tried in
    /// a network namespace of a thread's own, where the sysctl is set so.
    #[test]
    fn an_ipv6_listener_is_dual_stack_whatever_bindv6only_says() {
        let v6only = std::thread::spawn(|| {
            // SAFETY: unshare takes no pointers; CLONE_NEWNET moves this
            // thread alone (not the process) into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            std::fs::write("/proc/sys/net/ipv6/bindv6only", "1").expect("the namespace's own sysctl");
            let wildcard: SocketAddr = "[::]:0".parse().expect("an address");
            let (fd, _) = listen(wildcard, 16).expect("listen on [::]");
            let (anchor, local) = bind_reuseport_anchor(wildcard).expect("an anchor on [::]");
            let slot = listen_reuseport(local, 16).expect("a slot listener on [::]");
            Ok([fd, anchor, slot].map(|fd| socket::getsockopt(&fd, sockopt::Ipv6V6Only).expect("IPV6_V6ONLY")))
        })
        .join()
        .expect("the thread in its own namespace");
        match v6only {
            Ok(v6only) => assert_eq!(v6only, [false; 3], "IPV6_V6ONLY of the listener, anchor, slot listener"),
            Err(e) => eprintln!("skipped: no network namespace of its own ({e}): needs CAP_SYS_ADMIN"),
        }
    }
}
