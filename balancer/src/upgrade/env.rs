//! The fds an old master hands a new one, as named in the new master's
//! environment (free of I/O): `RINGMASTER_UPGRADE_FDS=listen=3,control=4,ready=5`
//! says what each inherited fd number is for, as nginx's `NGINX` variable and
//! systemd's `LISTEN_FDS`/`LISTEN_FDNAMES` do; `RINGMASTER_UPGRADE_FROM` is
//! the old master's pid, the only parent the names are meant for.

use std::fmt;
use std::os::fd::RawFd;

use crate::listener::ListenerKey;

/// The variable naming the inherited fds.
pub const ENV_UPGRADE_FDS: &str = "RINGMASTER_UPGRADE_FDS";
/// The variable with the pid of the old master that set [`ENV_UPGRADE_FDS`].
pub const ENV_UPGRADE_FROM: &str = "RINGMASTER_UPGRADE_FROM";
/// Set (to `1`) when the listeners handed over came from systemd (socket
/// activation): their addresses are systemd's choice, not `--bind`'s.
pub const ENV_UPGRADE_ACTIVATED: &str = "RINGMASTER_UPGRADE_ACTIVATED";
/// The control socket's file as the old master knows it, `DEV:INO`
/// (`SocketFile`): empty when its path no longer names that socket (removed
/// or replaced while it ran), and then neither master removes the path.
/// Unset by an old master that predates it: the new master takes the file
/// the path names as it starts.
pub const ENV_UPGRADE_CONTROL_FILE: &str = "RINGMASTER_UPGRADE_CONTROL_FILE";
/// The lowest fd number handed over: 0 to 2 are the new master's stdin,
/// stdout and stderr. Each fd keeps its number in the old master.
pub const FIRST_HANDED_FD: RawFd = 3;

/// What an inherited fd is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FdRole {
    /// A listening socket of the old master, under its key.
    Listener(ListenerKey),
    /// The control socket's listener.
    Control,
    /// The new master's end of the readiness channel: it writes
    /// [`READY_LINE`](super::READY_LINE) there once every worker is ready.
    Ready,
}

impl fmt::Display for FdRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdRole::Listener(key) => key.fmt(f),
            FdRole::Control => f.write_str("control"),
            FdRole::Ready => f.write_str("ready"),
        }
    }
}

impl FdRole {
    fn from_name(name: &str) -> Option<FdRole> {
        match name {
            "control" => Some(FdRole::Control),
            "ready" => Some(FdRole::Ready),
            _ => ListenerKey::from_name(name).map(FdRole::Listener),
        }
    }
}

/// The value of [`ENV_UPGRADE_FDS`] for `fds`: `name=number`, comma-separated.
pub fn format_fds(fds: &[(FdRole, RawFd)]) -> String {
    let entries: Vec<String> = fds.iter().map(|(role, fd)| format!("{role}={fd}")).collect();
    entries.join(",")
}

/// Parses a value of [`ENV_UPGRADE_FDS`]: every name known, every number at
/// least [`FIRST_HANDED_FD`], no name or number twice. The error says what is wrong.
pub fn parse_fds(text: &str) -> Result<Vec<(FdRole, RawFd)>, String> {
    let mut fds: Vec<(FdRole, RawFd)> = Vec::new();
    for entry in text.split(',').filter(|e| !e.is_empty()) {
        let (name, number) = entry.split_once('=').ok_or_else(|| format!("'{entry}' is not NAME=FD"))?;
        let role = FdRole::from_name(name).ok_or_else(|| format!("'{name}' names no fd a master hands over"))?;
        let fd: RawFd = number
            .parse()
            .ok()
            .filter(|&fd| fd >= FIRST_HANDED_FD)
            .ok_or_else(|| format!("'{number}' is not an fd number of at least {FIRST_HANDED_FD}"))?;
        if fds.iter().any(|&(r, f)| r == role || f == fd) {
            return Err(format!("'{entry}' repeats a name or an fd"));
        }
        fds.push((role, fd));
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        let fds = [
            (FdRole::Listener(ListenerKey::Main), 3),
            (FdRole::Listener(ListenerKey::Slot(2)), 4),
            (FdRole::Control, 5),
            (FdRole::Ready, 6),
        ];
        let text = format_fds(&fds);
        assert_eq!(text, "listen=3,listen.2=4,control=5,ready=6");
        assert_eq!(parse_fds(&text), Ok(fds.to_vec()));
        assert_eq!(parse_fds(""), Ok(Vec::new()));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["listen", "listen=x", "listen=2", "stats=7", "listen=3,listen=4", "listen=3,control=3"] {
            assert!(parse_fds(bad).is_err(), "{bad}");
        }
    }
}
