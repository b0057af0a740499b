//! The sockets the master listens with: one listener every mode but
//! `reuseport` uses, and for `reuseport` a bound anchor that holds the port
//! plus one `SO_REUSEPORT` listener per worker slot.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

/// Binds `addr` with `SO_REUSEADDR` and `TCP_NODELAY` (inherited by accepted
/// sockets) and listens with `backlog`; returns the socket and the address it got.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = bound(addr, false)?;
    start_listening(fd, backlog)
}

/// Binds `addr` with `SO_REUSEPORT` without listening: the anchor that holds
/// the port (and says which it is, when 0 was asked for) while each worker
/// slot's listener joins it with [`listen_reuseport`]. Not listening, it is
/// in no accept group: the kernel never queues a connection on it.
pub fn bind_reuseport_anchor(addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = bound(addr, true)?;
    let local = socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())?;
    let local = to_std(&local).ok_or_else(|| io::Error::other("the anchor has no IP address"))?;
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
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuseport {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(fd)
}

fn start_listening(fd: OwnedFd, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    // Above the kernel's SOMAXCONN the kernel clamps anyway; nix refuses, so clamp here.
    let backlog = Backlog::new(backlog.max(1)).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog)?;
    let listener = TcpListener::from(fd);
    let local = listener.local_addr()?;
    Ok((OwnedFd::from(listener), local))
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}
