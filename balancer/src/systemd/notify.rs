//! systemd's readiness protocol (`Type=notify`), spoken directly: one
//! datagram of `KEY=VALUE` lines to the socket named in `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`), as
//! `sd_notify(3)` does, without libsystemd. Sends never block: a message the
//! socket has no room for is dropped and said so once. With `WatchdogSec=`
//! the master also pings `WATCHDOG=1` at half the interval.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The variable naming the notification socket.
pub const ENV_NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog interval systemd expects pings within, in microseconds.
pub const ENV_WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog interval is meant for.
pub const ENV_WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The master's line to systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    /// `WATCHDOG=1` every this often, and when next.
    watchdog: Option<(Duration, Instant)>,
    /// A send failed and was logged: later failures are not.
    failed_once: bool,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if any. `upgraded`: this master
    /// took over from an old one, whose pid the watchdog variables name
    /// (the new master tells systemd it is the main process now).
    pub fn from_env(upgraded: bool) -> Option<Notifier> {
        let name = std::env::var_os(ENV_NOTIFY_SOCKET)?;
        let name = name.to_str().unwrap_or_default().to_string();
        let to = match socket_address(&name) {
            Ok(to) => to,
            Err(e) => {
                crate::log!(warn: "{ENV_NOTIFY_SOCKET}={name:?}: {e}: systemd is not told about readiness");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(socket) => socket,
            Err(e) => {
                crate::log!(warn: "cannot make a socket for {ENV_NOTIFY_SOCKET}: {e}");
                return None;
            }
        };
        let watchdog = watchdog_interval(upgraded).map(|every| (every, Instant::now()));
        Some(Notifier { socket, to, watchdog, failed_once: false })
    }

    /// Sends one message: `KEY=VALUE` lines.
    pub fn send(&mut self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.to) {
            if !self.failed_once {
                self.failed_once = true;
                let first = message.lines().next().unwrap_or_default();
                crate::log!(warn: "cannot notify systemd ({first}...): {e}");
            }
        }
    }

    /// Pings the watchdog if it is due (call it from the tick).
    pub fn ping_watchdog(&mut self, now: Instant) {
        let Some((every, next)) = self.watchdog else { return };
        if now >= next {
            self.watchdog = Some((every, now + every));
            self.send("WATCHDOG=1");
        }
    }
}

/// The address `$NOTIFY_SOCKET` names: `@name` is abstract, `/path` a file.
fn socket_address(name: &str) -> io::Result<SocketAddr> {
    match name.as_bytes().first() {
        Some(b'@') => SocketAddr::from_abstract_name(&name.as_bytes()[1..]),
        Some(b'/') => SocketAddr::from_pathname(name),
        _ => Err(io::Error::other("not an absolute path nor an abstract name (@...)")),
    }
}

/// Half the watchdog interval, if systemd set one for this process (or,
/// `upgraded`, for the old master this one replaces).
fn watchdog_interval(upgraded: bool) -> Option<Duration> {
    let usec: u64 = std::env::var(ENV_WATCHDOG_USEC).ok()?.parse().ok().filter(|&u| u > 0)?;
    let for_us = match std::env::var(ENV_WATCHDOG_PID).ok().and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => pid == std::process::id() || upgraded,
        None => true,
    };
    for_us.then(|| Duration::from_micros(usec / 2))
}

/// `MONOTONIC_USEC=`'s value: `CLOCK_MONOTONIC` in microseconds, the clock
/// systemd compares a reload's start with.
pub fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names() {
        let path = socket_address("/run/systemd/notify").expect("a path");
        assert_eq!(path.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
        let abstract_name = socket_address("@ringmaster/test").expect("an abstract name");
        assert_eq!(abstract_name.as_abstract_name(), Some(&b"ringmaster/test"[..]));
        assert!(socket_address("relative").is_err() && socket_address("").is_err());
    }

    #[test]
    fn one_datagram_per_message_to_an_abstract_socket() {
        let name = format!("ringmaster-notify-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).expect("addr")).expect("bind");
        let to = socket_address(&format!("@{name}")).expect("address");
        let socket = UnixDatagram::unbound().expect("socket");
        let mut notifier = Notifier { socket, to, watchdog: None, failed_once: false };
        notifier.send("READY=1\nSTATUS=serving");
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=serving");
    }

    #[test]
    fn the_monotonic_clock_moves() {
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
