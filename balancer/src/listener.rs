//! The listening sockets the master owns: binding one, taking over one an
//! old master handed down (`upgrade`), and the key each is known by.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

/// Which of the master's listening sockets one is: the key it is handed to a
/// new master under (`upgrade`), so each lands where the old one used it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListenerKey {
    /// The master's one listening socket (`rr`, `shared`).
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
    if let Some(addr) = addr.filter(|a| local.ip() != a.ip() || (a.port() != 0 && local.port() != a.port())) {
        return Err(io::Error::other(format!("it listens on {local}, not on {addr}")));
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
}
