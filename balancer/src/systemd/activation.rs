//! Socket activation: the listening sockets systemd passes (`LISTEN_FDS`
//! fds from fd 3 on, for the process `LISTEN_PID` names, with
//! `LISTEN_FDNAMES` naming them), as `sd_listen_fds_with_names(3)` reads
//! them. The master then binds nothing of its own: the socket named
//! `metrics` (`FileDescriptorName=metrics`) is the metrics endpoint's, the
//! first other one is the listener workers serve.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::sys::socket::{self, sockopt, SockType, SockaddrLike, SockaddrStorage};

use crate::error::{Error, Result};
use crate::upgrade::inherit::take_fd;

/// The variable with the number of fds passed.
pub const ENV_LISTEN_FDS: &str = "LISTEN_FDS";
/// The variable with the pid the fds are meant for.
pub const ENV_LISTEN_PID: &str = "LISTEN_PID";
/// The variable naming each fd, colon-separated.
pub const ENV_LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The first fd systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;
/// The name that makes a passed socket the metrics endpoint's.
pub const METRICS_NAME: &str = "metrics";

/// A listening socket systemd passed, checked.
#[derive(Debug)]
pub struct Passed {
    /// The socket.
    pub fd: OwnedFd,
    /// Its fd number as passed, for the log.
    pub number: RawFd,
    /// Its address.
    pub local: SocketAddr,
}

/// The sockets systemd passed this process.
#[derive(Debug, Default)]
pub struct Activated {
    /// The listener workers serve.
    pub main: Option<Passed>,
    /// The metrics endpoint's listener.
    pub metrics: Option<Passed>,
}

/// The sockets systemd passed, if it passed any to this process. Each must
/// be a listening TCP socket; anything else is an error, as is a metrics
/// socket with no main one. Sockets beyond those are closed, said so.
pub fn listen_fds() -> Result<Option<Activated>> {
    let Some(count) = std::env::var_os(ENV_LISTEN_FDS) else { return Ok(None) };
    let pid = std::env::var(ENV_LISTEN_PID).ok().and_then(|p| p.parse::<u32>().ok());
    if pid != Some(std::process::id()) {
        // Meant for another process (one that passed its environment on).
        return Ok(None);
    }
    let bad = |what: String| Error::Inherited(format!("socket activation ({ENV_LISTEN_FDS}={count:?}): {what}"));
    let count: RawFd =
        count.to_str().and_then(|c| c.parse().ok()).filter(|&n| n >= 0).ok_or_else(|| bad("not a count".into()))?;
    let names_var = std::env::var(ENV_LISTEN_FDNAMES).unwrap_or_default();
    let names: Vec<&str> = names_var.split(':').collect();
    let mut activated = Activated::default();
    for i in 0..count {
        let number = SD_LISTEN_FDS_START + i;
        let name = names.get(i as usize).copied().unwrap_or("");
        let fd = take_fd(number).map_err(|e| bad(format!("fd {number}: {e}")))?;
        let local = listening_tcp(&fd).map_err(|why| bad(format!("fd {number} ({name:?}) {why}")))?;
        // As on a socket the master binds: accepted connections inherit it.
        socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)
            .map_err(|e| bad(format!("fd {number}: TCP_NODELAY: {e}")))?;
        let passed = Passed { fd, number, local };
        let place = if name == METRICS_NAME { &mut activated.metrics } else { &mut activated.main };
        if place.is_some() {
            crate::log!(warn: "socket activation: closing fd {number} ({name:?}, {local}): this master uses one such socket");
            continue;
        }
        *place = Some(passed);
    }
    if activated.main.is_none() {
        return Err(bad("no listening socket for the workers (only one named metrics, or none)".into()));
    }
    Ok(Some(activated))
}

/// The address of `fd` if it is a listening TCP socket; else what it is not.
pub fn listening_tcp(fd: &OwnedFd) -> std::result::Result<SocketAddr, String> {
    let listening = socket::getsockopt(fd, sockopt::AcceptConn).map_err(|e| format!("is not a socket: {e}"))?;
    let stream = socket::getsockopt(fd, sockopt::SockType).map_err(|e| format!("is not a socket: {e}"))?;
    if stream != SockType::Stream || !listening {
        return Err("is not a listening stream socket (ListenStream=)".into());
    }
    let address: SockaddrStorage = socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()))
        .map_err(|e| format!("has no address: {e}"))?;
    match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
        (Some(v4), _) => Ok(SocketAddr::V4((*v4).into())),
        (_, Some(v6)) => Ok(SocketAddr::V6((*v6).into())),
        _ => Err(format!("is not a TCP socket (family {:?})", address.family())),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, UdpSocket};
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn only_a_listening_tcp_socket_will_do() {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let at = tcp.local_addr().expect("addr");
        assert_eq!(listening_tcp(&OwnedFd::from(tcp)), Ok(at));
        let udp = OwnedFd::from(UdpSocket::bind("127.0.0.1:0").expect("udp"));
        assert!(listening_tcp(&udp).unwrap_err().contains("not a listening stream"));
        let path = std::env::temp_dir().join(format!("ringmaster-activation-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let unix = OwnedFd::from(UnixListener::bind(&path).expect("unix"));
        let _ = std::fs::remove_file(&path);
        assert!(listening_tcp(&unix).unwrap_err().contains("not a TCP socket"));
        let file = OwnedFd::from(std::fs::File::open("/dev/null").expect("null"));
        assert!(listening_tcp(&file).unwrap_err().contains("not a socket"));
    }
}
