//! The listening socket the master owns.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

/// Binds `addr` with `SO_REUSEADDR` and `TCP_NODELAY` (inherited by accepted
/// sockets) and listens with `backlog`; returns the socket and the address it got.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<(OwnedFd, SocketAddr)> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    // Above the kernel's SOMAXCONN the kernel clamps anyway; nix refuses, so clamp here.
    let backlog = Backlog::new(backlog.max(1)).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog)?;
    let listener = TcpListener::from(fd);
    let local = listener.local_addr()?;
    Ok((OwnedFd::from(listener), local))
}
