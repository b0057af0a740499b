//! Creating the control socket at `--control PATH` (mode 0600) without
//! taking over anything: a regular file is never replaced, a socket a running
//! master answers on is left alone (the new master refuses to start), and
//! only a stale socket (nobody listening: `ECONNREFUSED`) is replaced. The one
//! way to take over a live socket is to be handed its listener (`upgrade`).
//! The path is removed at the end only while it still names the socket file
//! this master's listener was bound to: one removed and made again meanwhile
//! (another master started on that path) is another's. A path removed and
//! left empty can be bound again ([`ControlSocket::bind_again`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, getsockopt, listen, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::{fchmod, Mode};

use crate::error::{Context, Error, Result};

/// How long a socket must keep answering to be taken as a live master's.
const LIVE_FOR: Duration = Duration::from_secs(1);
/// How often it is tried meanwhile.
const LIVE_CHECK_EVERY: Duration = Duration::from_millis(20);

/// The file a path names (device and inode), to tell the socket file a
/// listener was bound to from a file put at the same path since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketFile {
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket file at `path` now, if there is one.
    pub fn at(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.file_type().is_socket().then(|| SocketFile { dev: meta.dev(), ino: meta.ino() })
    }

    /// `DEV:INO`, as an old master names it to a new one (`upgrade`).
    pub fn to_text(self) -> String {
        format!("{}:{}", self.dev, self.ino)
    }

    /// Reads [`SocketFile::to_text`]'s form.
    pub fn from_text(text: &str) -> Option<SocketFile> {
        let (dev, ino) = text.split_once(':')?;
        Some(SocketFile { dev: dev.parse().ok()?, ino: ino.parse().ok()? })
    }
}

/// The master's listening control socket; the path is removed when it
/// drops, if this master owns it and it still names this socket's file.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    bound: BoundPath,
}

/// The path a control socket is bound at, and whether it is this master's
/// to remove when it is done.
#[derive(Debug)]
struct BoundPath {
    path: PathBuf,
    /// The path is this master's to remove: it bound it, or took it over and
    /// the old master let it go. False while another master may still use it.
    owns_path: bool,
    /// The socket file the listener was bound to, as found after the bind
    /// (or as the old master named it): `None` when it is not known, and
    /// then the path is never removed.
    file: Option<SocketFile>,
}

impl BoundPath {
    /// The socket file the path still names, if it is this listener's.
    fn file(&self) -> Option<SocketFile> {
        self.file.filter(|&file| SocketFile::at(&self.path) == Some(file))
    }
}

/// A listening socket bound at `path` (which names nothing) whose file has
/// mode 0600 from the start. At `bind` the file takes the socket's own mode
/// less the umask, so the mode is set on the socket first, with `fchmod`:
/// narrowing the umask around the bind instead changed it for every thread
/// of the process, and a thread of a library user's program that made a
/// file meanwhile got it with that mask.
fn listen_private(path: &Path) -> io::Result<UnixListener> {
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(UnixListener::from(fd))
}

impl ControlSocket {
    /// Creates the socket at `path` with mode 0600.
    pub fn bind(path: &Path) -> Result<ControlSocket> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(Error::Config(format!("--control {shown}: exists and is not a socket")));
            }
            Ok(_) => {
                if someone_answers(path).context(format_args!("--control {shown}: cannot tell if it is in use"))? {
                    return Err(Error::ControlInUse(path.to_path_buf()));
                }
                std::fs::remove_file(path)
                    .context(format_args!("--control {shown}: cannot replace the stale socket"))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format_args!("--control {shown}"), e)),
        }
        ControlSocket::bind_free(path)
    }

    /// Creates the socket at `path`, which names nothing, with mode 0600.
    fn bind_free(path: &Path) -> Result<ControlSocket> {
        let shown = path.display();
        let listener = listen_private(path).context(format_args!("--control {shown}: cannot listen"))?;
        let file = SocketFile::at(path);
        let socket = ControlSocket { listener, bound: BoundPath { path: path.to_path_buf(), owns_path: true, file } };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .context(format_args!("--control {shown}: cannot set mode 0600"))?;
        Ok(socket)
    }

    /// The path names nothing any more, while it is this master's: removed
    /// under it (a cleaner of `/tmp`, an operator), so `ctl` cannot reach it.
    pub fn path_is_gone(&self) -> bool {
        self.bound.owns_path
            && std::fs::symlink_metadata(&self.bound.path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
    }

    /// Binds a new socket at the path, which names nothing now, and returns
    /// the listener it replaces (whose path is no longer this socket's).
    /// Fails, changing nothing, when the bind does: the directory is gone,
    /// or another master bound the path first.
    pub fn bind_again(&mut self) -> Result<UnixListener> {
        let fresh = ControlSocket::bind_free(&self.bound.path)?;
        let ControlSocket { listener, mut bound } = std::mem::replace(self, fresh);
        bound.owns_path = false;
        Ok(listener)
    }

    /// The path the socket is bound at.
    pub fn path(&self) -> &Path {
        &self.bound.path
    }

    /// Takes over the listener an old master handed down (`upgrade`): it must
    /// be a listening unix socket bound at `path`. The path stays the old
    /// master's to remove until [`ControlSocket::claim_path`]; `file` is the
    /// socket file the old master knew the listener by (`None`: the path no
    /// longer named it, and this master leaves the path alone too).
    pub fn inherited(fd: OwnedFd, path: &Path, file: Option<SocketFile>) -> Result<ControlSocket> {
        let shown = path.display();
        let listener = UnixListener::from(fd);
        let what = format!("--control {shown}: the socket handed down");
        let bound = listener.local_addr().context(&what)?;
        if bound.as_pathname() != Some(path) {
            let bound = bound.as_pathname().map_or_else(|| "no path".to_string(), |p| p.display().to_string());
            return Err(Error::Config(format!("{what} is bound at {bound}")));
        }
        let accepting = getsockopt(&listener, sockopt::AcceptConn).map_err(io::Error::from).context(&what)?;
        if !accepting {
            return Err(Error::Config(format!("{what} is not listening")));
        }
        Ok(ControlSocket { listener, bound: BoundPath { path: path.to_path_buf(), owns_path: false, file } })
    }

    /// The socket file the path still names, if it is this listener's: what
    /// an old master hands down with the listener (`upgrade`).
    pub fn file(&self) -> Option<SocketFile> {
        self.bound.file()
    }

    /// The listening socket.
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// This master removes the path when it is done: the master that handed
    /// the socket down no longer uses it.
    pub fn claim_path(&mut self) {
        self.bound.owns_path = true;
    }

    /// This master leaves the path alone when it is done: a new master serves it.
    pub fn leave_path(&mut self) {
        self.bound.owns_path = false;
    }
}

impl Drop for BoundPath {
    fn drop(&mut self) {
        if !self.owns_path {
            return;
        }
        // A path removed while this master ran, and perhaps bound again by
        // another master since, is not this master's to remove.
        if self.file().is_some() {
            let _ = std::fs::remove_file(&self.path);
        } else if std::fs::symlink_metadata(&self.path).is_ok() {
            crate::log!(warn:
                "--control {}: left in place: it is no longer this master's socket (the path was removed or \
                 replaced while it ran)",
                self.path.display()
            );
        }
    }
}

/// True when something accepts connections on the socket at `path`; false
/// when it is stale. The connect does not wait: a listener whose queue is
/// full (a master that is busy or stopped) still counts as answering. A
/// master that just died can leave its listener open for a moment (its
/// io_uring, torn down after the process, still holds the socket), so only a
/// socket that keeps answering for [`LIVE_FOR`] is taken as live.
fn someone_answers(path: &Path) -> io::Result<bool> {
    let address = UnixAddr::new(path)?;
    let deadline = Instant::now() + LIVE_FOR;
    loop {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let probe = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
        match connect(probe.as_raw_fd(), &address) {
            Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS) => {}
            Err(Errno::ECONNREFUSED | Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            return Ok(true);
        }
        std::thread::sleep(LIVE_CHECK_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ringmaster-unit-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn a_live_socket_is_refused_a_stale_one_replaced() {
        let path = temp_path("live");
        let _ = std::fs::remove_file(&path);
        let first = ControlSocket::bind(&path).expect("first bind");
        let second = ControlSocket::bind(&path).expect_err("a live socket is not taken over");
        assert!(matches!(second, Error::ControlInUse(_)), "{second}");
        assert!(path.exists(), "the refusal leaves the live socket in place");
        drop(first);
        // A socket whose listener is gone (a master that died) is stale.
        drop(UnixListener::bind(&path).expect("bind"));
        let replaced = ControlSocket::bind(&path).expect("a stale socket is replaced");
        drop(replaced);
        assert!(!path.exists(), "removed when the master is done with it");
    }

    #[test]
    fn a_handed_down_socket_keeps_its_path_until_claimed() {
        let path = temp_path("handed");
        let _ = std::fs::remove_file(&path);
        let mut old = ControlSocket::bind(&path).expect("bind");
        let handed = old.listener().try_clone_to_owned().expect("dup");
        let mut new = ControlSocket::inherited(handed, &path, old.file()).expect("the same socket");
        old.leave_path();
        drop(old);
        assert!(path.exists(), "the old master leaves the path to the new one");
        UnixStream::connect(&path).expect("the new master answers on it");
        new.claim_path();
        drop(new);
        assert!(!path.exists(), "the new master removes it once it owns it");
        let elsewhere = ControlSocket::bind(&temp_path("elsewhere")).expect("bind");
        let fd = elsewhere.listener().try_clone_to_owned().expect("dup");
        assert!(ControlSocket::inherited(fd, &path, None).is_err(), "bound at another path");
    }

    #[test]
    fn a_removed_path_is_bound_again_and_then_removed_at_the_end() {
        let path = temp_path("again");
        let _ = std::fs::remove_file(&path);
        let mut socket = ControlSocket::bind(&path).expect("bind");
        assert!(!socket.path_is_gone());
        std::fs::remove_file(&path).expect("removed under it");
        assert!(socket.path_is_gone());
        let replaced = socket.bind_again().expect("the path is free");
        assert!(!socket.path_is_gone());
        assert_eq!(socket.file(), SocketFile::at(&path), "the path names the new socket");
        drop(replaced);
        UnixStream::connect(&path).expect("the new socket answers");
        // Bound by another meanwhile: not this socket's to bind, or to remove.
        std::fs::remove_file(&path).expect("removed again");
        let other = UnixListener::bind(&path).expect("another binds it");
        assert!(!socket.path_is_gone(), "a path naming another's socket is not gone");
        drop(socket);
        assert!(path.exists(), "another's socket is left");
        drop(other);
        let _ = std::fs::remove_file(&path);
        let mut handed = ControlSocket::bind(&path).expect("bind");
        handed.leave_path();
        std::fs::remove_file(&path).expect("removed under it");
        assert!(!handed.path_is_gone(), "a path left to a new master is not this one's to make again");
    }

    #[test]
    fn a_path_bound_again_by_another_is_left_to_it() {
        let path = temp_path("rebound");
        let _ = std::fs::remove_file(&path);
        let first = ControlSocket::bind(&path).expect("bind");
        std::fs::remove_file(&path).expect("removed while the first runs");
        let second = ControlSocket::bind(&path).expect("the path is free again");
        assert_eq!(first.file(), None, "the path no longer names the first's socket");
        drop(first);
        assert!(path.exists(), "the first removed the second's socket");
        UnixStream::connect(&path).expect("the second answers on it");
        drop(second);
        assert!(!path.exists(), "the second removes its own");
    }
}
