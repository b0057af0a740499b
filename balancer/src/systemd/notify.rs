//! systemd's readiness protocol (`Type=notify`), spoken directly: one
//! datagram of `KEY=VALUE` lines to the socket named in `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`), as
//! `sd_notify(3)` does, without libsystemd. Sends never block: a message the
//! socket has no room for (systemd busy, its queue full) waits, and goes at
//! the next tick that finds room, in order; at most [`MAX_WAITING`] wait,
//! and past that the oldest that changes no state (`STATUS=`, `WATCHDOG=1`)
//! is dropped first, said once. A process that stops speaking for the
//! service (it exits, or hands the service over) has no later tick: what
//! still waits then gets [`FLUSH_WITHIN`] of blocking sends, the only time a
//! send here blocks. With `WatchdogSec=` the master also pings `WATCHDOG=1`
//! at half the interval.

use std::collections::VecDeque;
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

/// Most messages that wait for room in the notify socket.
pub const MAX_WAITING: usize = 8;

/// How long what still waits gets when the notifier is dropped (the
/// process exits, or stops speaking for the service): it has no loop to
/// wait in any more. systemd reads its queue between other work; a stop
/// is given 90 s by default, so 2 s more, only with its queue full, costs
/// little, and a busy host's systemd gets time to read.
pub const FLUSH_WITHIN: Duration = Duration::from_secs(2);

/// The lines that change what systemd thinks of the service: a message with
/// one is the last to be dropped.
const STATE_CHANGES: [&str; 4] = ["READY=1", "STOPPING=1", "RELOADING=1", "MAINPID="];

/// The master's line to systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    /// `WATCHDOG=1` every this often, and when next.
    watchdog: Option<(Duration, Instant)>,
    /// Messages the socket had no room for, oldest first (at most [`MAX_WAITING`]).
    waiting: VecDeque<String>,
    /// A send failed, a message had to wait, a message was dropped: each logged once.
    failed_once: bool,
    waited_once: bool,
    dropped_once: bool,
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
        Some(Notifier::new(socket, to, watchdog))
    }

    fn new(socket: UnixDatagram, to: SocketAddr, watchdog: Option<(Duration, Instant)>) -> Notifier {
        Notifier {
            socket,
            to,
            watchdog,
            waiting: VecDeque::with_capacity(MAX_WAITING),
            failed_once: false,
            waited_once: false,
            dropped_once: false,
        }
    }

    /// Sends one message (`KEY=VALUE` lines) now, or, when the socket has no
    /// room for it or for one sent before, once it has (at a tick: [`Notifier::on_tick`]).
    pub fn send(&mut self, message: &str) {
        if self.waiting.is_empty() {
            match self.socket.send_to_addr(message.as_bytes(), &self.to) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return self.failed(message, &e),
            }
        }
        self.wait(message.to_string());
        self.send_waiting();
    }

    /// Sends `message` now, if nothing waits and the socket has room: said
    /// later it would be wrong (another process may have spoken since).
    /// Whether it went.
    pub fn send_now_or_never(&mut self, message: &str) -> bool {
        if !self.waiting.is_empty() {
            return false;
        }
        match self.socket.send_to_addr(message.as_bytes(), &self.to) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                self.failed(message, &e);
                false
            }
        }
    }

    /// Some message waits for room.
    pub fn waits(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Sends what waits, blocking up to `within` for room in all; what has
    /// no room by then is dropped, said. For a process that stops speaking
    /// for the service (dropped: [`FLUSH_WITHIN`]): it has no later tick.
    pub fn flush(&mut self, within: Duration) {
        if self.waiting.is_empty() {
            return;
        }
        let count = self.waiting.len();
        crate::log!(warn:
            "systemd's notify socket is full: waiting up to {:.1} s for room for {} at exit",
            within.as_secs_f64(),
            crate::log::counted(count, "notification")
        );
        let deadline = Instant::now() + within;
        // A blocking send to a datagram socket whose queue is full waits
        // for room, up to the send timeout.
        if let Err(e) = self.socket.set_nonblocking(false) {
            crate::log!(warn: "cannot wait for room in systemd's notify socket: {e}");
        }
        while let Some(message) = self.waiting.front() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.socket.set_write_timeout(Some(left)).is_err() {
                break;
            }
            match self.socket.send_to_addr(message.as_bytes(), &self.to) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let message = message.clone();
                    self.failed(&message, &e);
                }
            }
            self.waiting.pop_front();
        }
        let _ = self.socket.set_nonblocking(true);
        if let Some(first) = self.waiting.front().and_then(|m| m.lines().next()) {
            crate::log!(warn:
                "systemd's notify socket stayed full: {} dropped at exit, the first {first}...",
                crate::log::counted(self.waiting.len(), "notification")
            );
        }
        self.waiting.clear();
    }

    /// Drops what waits without sending it (said, if anything does): said
    /// late, it would undo what another process has told systemd since.
    pub fn discard(mut self, why: &str) {
        if let Some(first) = self.waiting.front().and_then(|m| m.lines().next()) {
            crate::log!(
                "not sending {} still waiting for systemd's notify socket ({first}...): {why}",
                crate::log::counted(self.waiting.len(), "notification")
            );
        }
        self.waiting.clear();
    }

    /// Each tick: what waits for room goes, if there is room now; and the
    /// watchdog is pinged if that is due.
    pub fn on_tick(&mut self, now: Instant) {
        self.send_waiting();
        let Some((every, next)) = self.watchdog else { return };
        if now >= next {
            self.watchdog = Some((every, now + every));
            self.send("WATCHDOG=1");
        }
    }

    /// Sends what waits, oldest first, until the socket has no room.
    fn send_waiting(&mut self) {
        while let Some(message) = self.waiting.front() {
            match self.socket.send_to_addr(message.as_bytes(), &self.to) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    let message = message.clone();
                    self.failed(&message, &e);
                }
            }
            self.waiting.pop_front();
        }
    }

    /// Keeps `message` until the socket has room; with [`MAX_WAITING`]
    /// waiting already, the oldest that changes no state makes room (or,
    /// if each does, the oldest).
    fn wait(&mut self, message: String) {
        if !self.waited_once {
            self.waited_once = true;
            let first = message.lines().next().unwrap_or_default();
            crate::log!(warn: "systemd's notify socket is full: {first}... waits, sent at a tick with room");
        }
        if self.waiting.len() == MAX_WAITING {
            let changes_state = |m: &String| m.lines().any(|l| STATE_CHANGES.iter().any(|s| l.starts_with(s)));
            let oldest = self.waiting.iter().position(|m| !changes_state(m)).unwrap_or(0);
            if let Some(dropped) = self.waiting.remove(oldest) {
                if !self.dropped_once {
                    self.dropped_once = true;
                    let first = dropped.lines().next().unwrap_or_default();
                    crate::log!(warn: "systemd's notify socket stays full: {first}... dropped ({MAX_WAITING} newer wait)");
                }
            }
        }
        self.waiting.push_back(message);
    }

    fn failed(&mut self, message: &str, e: &io::Error) {
        if !self.failed_once {
            self.failed_once = true;
            let first = message.lines().next().unwrap_or_default();
            crate::log!(warn: "cannot notify systemd ({first}...): {e}");
        }
    }
}

impl Drop for Notifier {
    /// What still waits goes now, or within [`FLUSH_WITHIN`].
    fn drop(&mut self) {
        self.flush(FLUSH_WITHIN);
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
        let (receiver, to, socket) = abstract_socket("test");
        let mut notifier = Notifier::new(socket, to, None);
        notifier.send("READY=1\nSTATUS=serving");
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=serving");
    }

    /// A receiver bound to an abstract name of this test's (`tag`), its
    /// address, and an unbound socket to send from.
    fn abstract_socket(tag: &str) -> (UnixDatagram, SocketAddr, UnixDatagram) {
        let name = format!("ringmaster-notify-{tag}-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).expect("addr")).expect("bind");
        let to = socket_address(&format!("@{name}")).expect("address");
        (receiver, to, UnixDatagram::unbound().expect("socket"))
    }

    /// Fills `to`'s queue from `socket` until it has no room; how many went.
    fn fill(socket: &UnixDatagram, to: &SocketAddr) -> usize {
        socket.set_nonblocking(true).expect("nonblocking");
        let mut filled = 0;
        loop {
            match socket.send_to_addr(b"STATUS=filler", to) {
                Ok(_) => filled += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return filled,
                Err(e) => panic!("filling the socket: {e}"),
            }
            assert!(filled < 1_000_000, "the socket never filled");
        }
    }

    /// Every message waiting at `receiver`, oldest first.
    fn read_all(receiver: &UnixDatagram) -> Vec<String> {
        receiver.set_nonblocking(true).expect("nonblocking");
        let mut buffer = [0u8; 256];
        let mut got = Vec::new();
        while let Ok(n) = receiver.recv(&mut buffer) {
            got.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
        got
    }

    /// A message the notify socket has no room for (systemd busy: its queue
    /// full) waits and goes, in order, at the next tick with room: `READY=1`
    /// was dropped, said once in the log, and systemd, never told, killed the
    /// service at `TimeoutStartSec=`.
    #[test]
    fn a_message_the_full_socket_has_no_room_for_goes_at_a_tick_once_there_is_room() {
        let (receiver, to, socket) = abstract_socket("full");
        let filled = fill(&socket, &to);
        let mut notifier = Notifier::new(socket, to, None);
        notifier.send("READY=1\nSTATUS=serving");
        notifier.send("STATUS=serving: 2 of 2");
        notifier.on_tick(Instant::now());
        let mut got = read_all(&receiver);
        assert_eq!(got.len(), filled, "nothing more had room: {:?}", &got[filled.min(got.len())..]);
        notifier.on_tick(Instant::now());
        got = read_all(&receiver);
        assert_eq!(got, ["READY=1\nSTATUS=serving", "STATUS=serving: 2 of 2"], "what waited, in order");
        notifier.on_tick(Instant::now());
        assert!(read_all(&receiver).is_empty(), "sent once");
    }

    /// Past [`MAX_WAITING`], a `STATUS=` makes room, never `READY=1`.
    #[test]
    fn a_full_wait_drops_a_status_before_a_state() {
        let (receiver, to, socket) = abstract_socket("bound");
        let filled = fill(&socket, &to);
        let mut notifier = Notifier::new(socket, to, None);
        notifier.send("READY=1");
        for n in 0..MAX_WAITING + 2 {
            notifier.send(&format!("STATUS={n}"));
        }
        assert_eq!(read_all(&receiver).len(), filled);
        notifier.on_tick(Instant::now());
        let got = read_all(&receiver);
        let mut expected = vec!["READY=1".to_string()];
        expected.extend((3..MAX_WAITING + 2).map(|n| format!("STATUS={n}")));
        assert_eq!(got, expected, "the newest statuses after READY=1");
    }

    /// Dropped (the master exits, or stops speaking for the service), the
    /// notifier waits a bounded time for room for what waits: it has no
    /// later tick. Before, what waited was lost: a `STOPPING=1`, a new
    /// master's `MAINPID=` giving the service back to the old master.
    #[test]
    fn what_waits_goes_when_the_notifier_is_dropped_once_there_is_room() {
        let (receiver, to, socket) = abstract_socket("drop");
        let filled = fill(&socket, &to);
        let mut notifier = Notifier::new(socket, to, None);
        notifier.send("STOPPING=1\nSTATUS=stopping");
        notifier.send("STATUS=stopping: 0 left");
        let reader = std::thread::spawn(move || {
            // Room once the drop waits: systemd reads its queue.
            std::thread::sleep(Duration::from_millis(50));
            receiver.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut buffer = [0u8; 256];
            let mut got = Vec::new();
            while got.len() < filled + 2 {
                let Ok(n) = receiver.recv(&mut buffer) else { break };
                got.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
            got
        });
        let began = Instant::now();
        drop(notifier);
        let waited = began.elapsed();
        let got = reader.join().expect("the reader");
        assert_eq!(&got[filled.min(got.len())..], ["STOPPING=1\nSTATUS=stopping", "STATUS=stopping: 0 left"]);
        // Room came at once: not the whole bound (plus a slow machine's slack).
        assert!(waited < FLUSH_WITHIN + Duration::from_secs(10), "bounded: {waited:?}");
    }

    /// With no room at all, the drop gives up after [`FLUSH_WITHIN`]; a
    /// discarded notifier sends nothing and does not wait.
    #[test]
    fn a_drop_waits_at_most_its_bound_and_a_discard_not_at_all() {
        let (receiver, to, socket) = abstract_socket("never");
        let filled = fill(&socket, &to);
        let mut notifier = Notifier::new(socket, to.clone(), None);
        notifier.send("STOPPING=1");
        let began = Instant::now();
        drop(notifier);
        let waited = began.elapsed();
        // It gave up (a wait with no bound would never return) after the bound.
        assert!(waited >= FLUSH_WITHIN, "{waited:?}");
        let socket = UnixDatagram::unbound().expect("socket");
        socket.set_nonblocking(true).expect("nonblocking");
        let mut notifier = Notifier::new(socket, to, None);
        notifier.send("RELOADING=1");
        assert!(notifier.waits());
        let began = Instant::now();
        notifier.discard("a test");
        assert!(began.elapsed() < FLUSH_WITHIN, "a discard does not wait for room");
        assert_eq!(read_all(&receiver).len(), filled, "nothing but the filler");
    }

    #[test]
    fn the_monotonic_clock_moves() {
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
