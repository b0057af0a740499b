//! The new master's side of an upgrade: take the fds the old master handed
//! down, as named in the environment, and tell it once every worker of this
//! master is ready.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};

use super::env::{
    parse_fds, FdRole, ENV_UPGRADE_ACTIVATED, ENV_UPGRADE_CONTROL_FILE, ENV_UPGRADE_FDS, ENV_UPGRADE_FROM,
};
use super::{GIVEN_UP_LINE, READY_LINE};
use crate::control::socket::SocketFile;
use crate::error::{Error, Result};
use crate::listener::ListenerKey;

/// The fds an old master handed this one, until the master takes each.
#[derive(Debug)]
pub struct Inherited {
    from: u32,
    listeners: Vec<(ListenerKey, OwnedFd)>,
    control: Option<OwnedFd>,
    /// The control socket's file, as the old master knew it (`None`: it
    /// did not say, predating the word).
    control_file: Option<Option<SocketFile>>,
    ready: OwnedFd,
    activated: bool,
}

impl Inherited {
    /// The fds handed to this process, if an old master started it
    /// ([`ENV_UPGRADE_FDS`], with the old master's pid in
    /// [`ENV_UPGRADE_FROM`]). They are taken when that master is this
    /// process's parent, or, when it is not (it died before this process
    /// started, or a wrapper started this process without `exec`), when the
    /// readiness channel named there is the one that master made. Names set
    /// for another process (inherited through one that ignored them) are
    /// ignored, said so, and their fds left alone.
    pub fn from_env() -> Result<Option<Inherited>> {
        let Some(names) = std::env::var_os(ENV_UPGRADE_FDS) else { return Ok(None) };
        let bad = |what: String| Error::Inherited(format!("{ENV_UPGRADE_FDS}={names:?}: {what}"));
        let from = std::env::var(ENV_UPGRADE_FROM).ok().and_then(|pid| pid.parse::<u32>().ok());
        let parent = std::os::unix::process::parent_id();
        let Some(from) = from.filter(|&from| from == parent || made_the_ready_channel(&names, from)) else {
            crate::log!(warn:
                "ignoring {ENV_UPGRADE_FDS}: it is meant for a master started by pid {}, and this one's parent is pid \
                 {parent}",
                from.map_or_else(|| "(unknown)".to_string(), |pid| pid.to_string())
            );
            return Ok(None);
        };
        if from != parent {
            crate::log!(warn:
                "upgrade: the old master (pid {from}) is not this process's parent (pid {parent}): it exited, or a \
                 wrapper started this process without exec; taking the fds it handed down, its readiness channel \
                 being the one it made"
            );
        }
        let text = names.to_str().ok_or_else(|| bad("not text".to_string()))?;
        let mut listeners = Vec::new();
        let (mut control, mut ready) = (None, None);
        for (role, number) in parse_fds(text).map_err(bad)? {
            let fd = take_fd(number).map_err(|e| bad(format!("fd {number} ({role}): {e}")))?;
            match role {
                FdRole::Listener(key) => listeners.push((key, fd)),
                FdRole::Control => control = Some(fd),
                FdRole::Ready => ready = Some(fd),
            }
        }
        let ready = ready.ok_or_else(|| bad("no readiness channel (ready=FD)".to_string()))?;
        let activated = std::env::var_os(ENV_UPGRADE_ACTIVATED).is_some_and(|v| v == "1");
        let control_file = std::env::var(ENV_UPGRADE_CONTROL_FILE).ok().map(|text| SocketFile::from_text(&text));
        Ok(Some(Inherited { from, listeners, control, control_file, ready, activated }))
    }

    /// The old master's pid.
    pub fn from(&self) -> u32 {
        self.from
    }

    /// The listeners came from systemd (socket activation) to the first
    /// master of the line: their addresses are not `--bind`'s.
    pub fn activated(&self) -> bool {
        self.activated
    }

    /// The listening socket handed down under `key`, if it was.
    pub fn take_listener(&mut self, key: ListenerKey) -> Option<OwnedFd> {
        let at = self.listeners.iter().position(|(k, _)| *k == key)?;
        Some(self.listeners.swap_remove(at).1)
    }

    /// Every listening socket handed down for a worker slot
    /// ([`ListenerKey::Slot`]), with the slot's worker id.
    pub fn take_slot_listeners(&mut self) -> Vec<(usize, OwnedFd)> {
        let mut slots = Vec::new();
        let mut i = 0;
        while i < self.listeners.len() {
            if let ListenerKey::Slot(worker) = self.listeners[i].0 {
                slots.push((worker, self.listeners.swap_remove(i).1));
            } else {
                i += 1;
            }
        }
        slots.sort_by_key(|&(worker, _)| worker);
        slots
    }

    /// The control socket's listener, if it was handed down, and its file
    /// as the old master knew it (`None`: an old master that predates the
    /// word said nothing).
    pub fn take_control(&mut self) -> Option<(OwnedFd, Option<Option<SocketFile>>)> {
        Some((self.control.take()?, self.control_file))
    }

    /// What is left once the master took what it uses: the readiness
    /// channel. Listeners nobody took are closed, and named in the log.
    pub fn into_takeover(self) -> Takeover {
        for (key, _) in &self.listeners {
            crate::log!("upgrade: closing the inherited listener '{key}': this master does not use it");
        }
        Takeover { from: self.from, channel: self.ready }
    }
}

/// A takeover under way: the old master serves until this one says it is ready.
#[derive(Debug)]
pub struct Takeover {
    /// The old master's pid.
    pub from: u32,
    channel: OwnedFd,
}

impl Takeover {
    /// Tells the old master this one is ready. The channel stays open: the
    /// old master closes it once it has read the word, or says on it that
    /// it gave the upgrade up ([`Takeover::old_master_said`]).
    pub fn report_ready(&self) -> io::Result<()> {
        let mut rest = READY_LINE;
        while !rest.is_empty() {
            match send(self.channel.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// After the word: what the old master did with it so far, without
    /// waiting.
    pub fn old_master_said(&self) -> io::Result<AfterReady> {
        let mut buffer = [0u8; 32];
        loop {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK;
            return match recv(self.channel.as_raw_fd(), &mut buffer, flags) {
                Ok(0) => Ok(AfterReady::Read),
                Ok(n) if buffer[..n].starts_with(GIVEN_UP_LINE) => Ok(AfterReady::GaveUp),
                Ok(n) if GIVEN_UP_LINE.starts_with(&buffer[..n]) => Ok(AfterReady::Undecided),
                Ok(n) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("it said {:?}", String::from_utf8_lossy(&buffer[..n])),
                )),
                // Closed with the word unread: it gave up (an old master
                // that does not say so), or it died.
                Err(Errno::ECONNRESET) => Ok(AfterReady::ClosedUnread),
                Err(Errno::EAGAIN) => Ok(AfterReady::Undecided),
                Err(Errno::EINTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }
}

/// What the old master did with the word that this master is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterReady {
    /// Nothing yet: the channel is open and silent.
    Undecided,
    /// It read the word and closed the channel: it hands over.
    Read,
    /// It said it gave the upgrade up, and serves on.
    GaveUp,
    /// It closed the channel without reading the word.
    ClosedUnread,
}

/// Is the fd named `ready` in `names` a socket whose peer is pid `from`,
/// the one that made the pair (`SO_PEERCRED` keeps the maker's pid after it
/// exits)? That is the readiness channel an old master made for the process
/// it started, which no process it did not start holds. Nothing is taken:
/// when the answer is no, the fds stay as they are.
fn made_the_ready_channel(names: &std::ffi::OsStr, from: u32) -> bool {
    let Some(fds) = names.to_str().and_then(|text| parse_fds(text).ok()) else { return false };
    let Some(&(_, ready)) = fds.iter().find(|(role, _)| *role == FdRole::Ready) else { return false };
    peer_pid(ready) == Some(from)
}

/// The pid `SO_PEERCRED` gives for the socket at fd `number`, if it is one.
fn peer_pid(number: RawFd) -> Option<u32> {
    let mut credentials = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt only reads the option of whatever `number` refers
    // to (or fails, EBADF/ENOTSOCK), and writes at most `length` bytes into
    // `credentials`, which is that large.
    let done = unsafe {
        libc::getsockopt(
            number,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(credentials).cast(),
            &mut length,
        )
    };
    (done == 0 && credentials.pid > 0).then_some(credentials.pid as u32)
}

/// Owns the fd at `number`, which the old master placed there, and makes it
/// close-on-exec (workers must not inherit it).
pub(crate) fn take_fd(number: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(number, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the old master placed this fd here for this process, named in an
    // environment checked to come from the old master (its parent, or the
    // maker of the readiness channel named there); nothing else in
    // this process was given that number or refers to it (every fd it opened
    // itself got a number that was free, and this one was not).
    let fd = unsafe { OwnedFd::from_raw_fd(number) };
    // SAFETY: setting FD_CLOEXEC on a valid fd this process owns.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn after_the_word_the_channel_tells_read_given_up_or_closed_unread() {
        use std::io::{Read, Write};
        let told = || {
            let (mut ours, theirs) = UnixStream::pair().expect("a socket pair");
            let takeover = Takeover { from: 1, channel: OwnedFd::from(theirs) };
            takeover.report_ready().expect("the word");
            let mut word = [0u8; 6];
            ours.read_exact(&mut word).expect("read the word");
            assert_eq!(&word, READY_LINE);
            (takeover, ours)
        };
        let (takeover, ours) = told();
        assert_eq!(takeover.old_master_said().expect("said"), AfterReady::Undecided);
        drop(ours);
        assert_eq!(takeover.old_master_said().expect("said"), AfterReady::Read);

        let (takeover, mut ours) = told();
        ours.write_all(GIVEN_UP_LINE).expect("give up");
        drop(ours);
        // Peeked: asked again, the same.
        assert_eq!(takeover.old_master_said().expect("said"), AfterReady::GaveUp);
        assert_eq!(takeover.old_master_said().expect("said"), AfterReady::GaveUp);

        // The word left unread, the channel closed.
        let (ours, theirs) = UnixStream::pair().expect("a socket pair");
        let takeover = Takeover { from: 1, channel: OwnedFd::from(theirs) };
        takeover.report_ready().expect("the word");
        drop(ours);
        assert_eq!(takeover.old_master_said().expect("said"), AfterReady::ClosedUnread);
    }

    #[test]
    fn the_ready_channel_is_known_by_the_pid_that_made_it() {
        let (ours, theirs) = UnixStream::pair().expect("a socket pair");
        let me = std::process::id();
        assert_eq!(peer_pid(theirs.as_raw_fd()), Some(me));
        let names = |ready: RawFd| std::ffi::OsString::from(format!("listen=1000,ready={ready}"));
        assert!(made_the_ready_channel(&names(theirs.as_raw_fd()), me));
        assert!(!made_the_ready_channel(&names(theirs.as_raw_fd()), me + 1), "another pid made it");
        // Not a socket, no `ready`, names that do not parse: nothing is taken.
        // (A closed number is not tried: another test's thread may reuse it.)
        let file = std::fs::File::open("/proc/self/stat").expect("open a file");
        assert!(!made_the_ready_channel(&names(file.as_raw_fd()), me));
        drop(ours);
        assert!(!made_the_ready_channel(std::ffi::OsStr::new("listen=3"), me));
        assert!(!made_the_ready_channel(std::ffi::OsStr::new("ready=x"), me));
    }
}
