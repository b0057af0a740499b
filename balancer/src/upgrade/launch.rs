//! The old master's side of an upgrade: find the file to run (the path this
//! master was started from, as it was resolved at start), start the new
//! master from it with the fds it hands over placed at fixed numbers and
//! named in its environment, and hear its word that it is ready.

use std::ffi::{OsStr, OsString};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, send, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

use super::env::{
    format_fds, FdRole, ENV_UPGRADE_ACTIVATED, ENV_UPGRADE_CONTROL_FILE, ENV_UPGRADE_FDS, ENV_UPGRADE_FROM,
    FIRST_HANDED_FD,
};
use super::{GIVEN_UP_LINE, READY_LINE};
use crate::control::socket::SocketFile;
use crate::spawn::{dup_at_least, OwnImage, ENV_MASTER_PID, ENV_WORKER_ID};
use crate::systemd::activation::{ENV_LISTEN_FDNAMES, ENV_LISTEN_FDS, ENV_LISTEN_PID};

/// The file an upgrade runs: `argv[0]` made absolute against the working
/// directory at start, when it has a `/` and names the running image then
/// (so a symlink there, `current -> release-2`, is followed anew at each
/// upgrade); otherwise the path the kernel gave for the image at start.
/// `None` when neither is known.
pub fn upgrade_path(argv0: Option<&OsStr>, image: &OwnImage) -> Option<PathBuf> {
    let has_slash = |p: &&Path| p.as_os_str().as_bytes().contains(&b'/');
    let named = argv0.map(Path::new).filter(has_slash).and_then(|p| std::path::absolute(p).ok());
    named.filter(|path| same_file(path, &image.exec_path())).or_else(|| image.path.clone())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// How the new master is started.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The file to run.
    pub program: &'a Path,
    /// Its `argv[0]`: the one this master was started with.
    pub argv0: &'a OsStr,
    /// Its arguments: this master's own.
    pub args: &'a [OsString],
    /// What it is handed besides the readiness channel: every listening
    /// socket, the control socket's listener.
    pub fds: &'a [(FdRole, BorrowedFd<'a>)],
    /// The listeners came from systemd (socket activation), not from `--bind`.
    pub activated: bool,
    /// The control socket's file, while its path still names it.
    pub control_file: Option<SocketFile>,
}

/// A new master this one started.
#[derive(Debug)]
pub struct Started {
    /// Its pid: a child of this master until this master exits.
    pub pid: u32,
    /// Where it says it is ready.
    pub channel: ReadyChannel,
}

/// Starts the new master. The fds it is handed keep their numbers: the
/// child clears their close-on-exec flag between the fork and the exec, so
/// they, and only they, survive the exec, named by number in
/// [`ENV_UPGRADE_FDS`] (the readiness channel last). Nothing is duplicated
/// for them in this master: a launch needs five descriptors (the channel's
/// two ends, `/dev/null` for stdin and the pipe that reports a failed exec)
/// however many listeners it hands down, so that the fd reserve
/// (`fd_reserve.rs`) covers it at the open-file limit whatever the number of
/// `reuseport` slots. It gets no parent-death signal: it outlives this
/// master, reparented.
pub fn start_new_master(launch: &Launch<'_>) -> io::Result<Started> {
    let (ours, theirs) = UnixStream::pair()?;
    let mut handed: Vec<(FdRole, BorrowedFd<'_>)> = launch.fds.to_vec();
    handed.push((FdRole::Ready, theirs.as_fd()));
    // A socket numbered below the first number a new master takes (this
    // master was started with stdin, stdout or stderr closed) is handed as
    // a copy numbered above.
    let low_copies = handed
        .iter()
        .filter(|(_, fd)| fd.as_raw_fd() < FIRST_HANDED_FD)
        .map(|&(role, fd)| dup_at_least(fd, FIRST_HANDED_FD).map(|copy| (role, copy)))
        .collect::<io::Result<Vec<(FdRole, OwnedFd)>>>()?;
    let number = |role: FdRole, fd: BorrowedFd<'_>| {
        let copy = low_copies.iter().find(|(r, _)| *r == role).map(|(_, copy)| copy.as_raw_fd());
        copy.unwrap_or(fd.as_raw_fd())
    };
    let named: Vec<(FdRole, RawFd)> = handed.iter().map(|&(role, fd)| (role, number(role, fd))).collect();
    let kept: Vec<RawFd> = named.iter().map(|&(_, fd)| fd).collect();
    let mut command = Command::new(launch.program);
    command
        .arg0(launch.argv0)
        .args(launch.args)
        .env(ENV_UPGRADE_FDS, format_fds(&named))
        .env(ENV_UPGRADE_FROM, std::process::id().to_string())
        .env_remove(ENV_WORKER_ID)
        .env_remove(ENV_MASTER_PID)
        .env_remove(ENV_LISTEN_FDS)
        .env_remove(ENV_LISTEN_PID)
        .env_remove(ENV_LISTEN_FDNAMES)
        .stdin(Stdio::null());
    if launch.activated {
        command.env(ENV_UPGRADE_ACTIVATED, "1");
    } else {
        command.env_remove(ENV_UPGRADE_ACTIVATED);
    }
    command.env(ENV_UPGRADE_CONTROL_FILE, launch.control_file.map(SocketFile::to_text).unwrap_or_default());
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (fcntl, sigemptyset, sigprocmask) and reads
    // `kept`, made before the fork; the master is single-threaded, so the
    // fork copies no lock held by another thread.
    unsafe {
        command.pre_exec(move || {
            for &fd in &kept {
                // The flag is the child's own (a descriptor flag, not the
                // open file's): this master's copies stay close-on-exec.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // The master blocks the signals it reads from its signalfd; the new one starts clean.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(low_copies);
    drop(theirs);
    Ok(Started { pid: child.id(), channel: ReadyChannel::new(ours)? })
}

/// What the new master said on the readiness channel so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Nothing conclusive yet.
    Nothing,
    /// It is ready: every worker of its own is.
    Ready,
    /// It closed the channel without saying so (it exited, or gave up).
    Closed,
    /// It said something else.
    Garbled(String),
}

/// The old master's end of the readiness channel (non-blocking).
#[derive(Debug)]
pub struct ReadyChannel {
    stream: UnixStream,
    heard: Vec<u8>,
    /// The pid of the process that wrote what was heard, as the kernel
    /// tells it (`SO_PASSCRED`): the new master itself, where the pid this
    /// master started is a wrapper's that did not `exec` it.
    speaker: Option<u32>,
}

impl ReadyChannel {
    /// The old master's end: non-blocking, and told who writes on it.
    fn new(stream: UnixStream) -> io::Result<ReadyChannel> {
        stream.set_nonblocking(true)?;
        setsockopt(&stream, sockopt::PassCred, &true)?;
        Ok(ReadyChannel { stream, heard: Vec::with_capacity(READY_LINE.len()), speaker: None })
    }

    /// The pid of the process that spoke on the channel, once it has.
    pub fn speaker(&self) -> Option<u32> {
        self.speaker
    }

    /// The fd to wait on for something to read.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads what has arrived, without waiting.
    pub fn listen(&mut self) -> io::Result<Heard> {
        let mut buffer = [0u8; 64];
        let mut credentials = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        loop {
            let mut slices = [IoSliceMut::new(&mut buffer)];
            let (n, speaker) = match recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut slices,
                Some(&mut credentials),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => {
                    let speaker = message.cmsgs().ok().into_iter().flatten().find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmCredentials(credentials) => u32::try_from(credentials.pid()).ok(),
                        _ => None,
                    });
                    (message.bytes, speaker)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(Heard::Closed);
            }
            self.speaker = self.speaker.or(speaker);
            self.heard.extend_from_slice(&buffer[..n]);
            if self.heard.len() >= READY_LINE.len() {
                break;
            }
        }
        Ok(match &self.heard {
            heard if heard.starts_with(READY_LINE) => Heard::Ready,
            heard if READY_LINE.starts_with(heard) => Heard::Nothing,
            heard => Heard::Garbled(String::from_utf8_lossy(heard).into_owned()),
        })
    }

    /// Ends the channel's reading for good, then reads what had arrived:
    /// from now on the new master's send fails (`EPIPE`), so that what it
    /// was able to say and what this master heard agree, however close to
    /// a deadline it spoke.
    pub fn last_word(&mut self) -> io::Result<Heard> {
        self.stream.shutdown(std::net::Shutdown::Read)?;
        self.listen()
    }

    /// Tells the new master this one gives the upgrade up (before it is
    /// signalled: the word is there when the signal is read). Without
    /// waiting: the channel carries nothing else this way, so the word fits.
    pub fn give_up(&self) -> io::Result<()> {
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        let sent = send(self.stream.as_raw_fd(), GIVEN_UP_LINE, flags)?;
        if sent < GIVEN_UP_LINE.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the word was cut short"));
        }
        Ok(())
    }

    /// The channel, to close.
    pub fn into_fd(self) -> OwnedFd {
        OwnedFd::from(self.stream)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_path_is_argv0_when_it_names_the_running_image() {
        let image = OwnImage::open().expect("open the test binary");
        let exe = image.path.clone().expect("the kernel names the test binary");
        assert_eq!(upgrade_path(Some(exe.as_os_str()), &image), Some(exe.clone()));
        // A bare name (found on PATH), or one naming another file: the kernel's path.
        assert_eq!(upgrade_path(Some(OsStr::new("ringmaster")), &image), Some(exe.clone()));
        assert_eq!(upgrade_path(Some(OsStr::new("/bin/sh")), &image), Some(exe.clone()));
        assert_eq!(upgrade_path(None, &image), Some(exe.clone()));
        // A symlink to the image is kept as it is, to be followed again at the upgrade.
        let link = std::env::temp_dir().join(format!("ringmaster-unit-{}-link", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link).expect("symlink");
        assert_eq!(upgrade_path(Some(link.as_os_str()), &image), Some(link.clone()));
        let _ = std::fs::remove_file(&link);
    }

    #[test]
    fn giving_up_says_so_on_the_channel() {
        use std::io::Read;
        let (ours, mut theirs) = UnixStream::pair().expect("pair");
        ReadyChannel::new(ours).expect("a channel").give_up().expect("give up");
        let mut said = [0u8; GIVEN_UP_LINE.len()];
        theirs.read_exact(&mut said).expect("read");
        assert_eq!(&said[..], GIVEN_UP_LINE);
    }

    #[test]
    fn the_channel_hears_ready_closed_or_garbled() {
        let channel = |said: &[u8], close: bool| {
            let (ours, mut theirs) = UnixStream::pair().expect("pair");
            let mut ours = ReadyChannel::new(ours).expect("a channel");
            theirs.write_all(said).expect("write");
            let open = (!close).then_some(theirs);
            let heard = ours.listen().expect("listen");
            drop(open);
            // Whoever wrote is named, by the kernel: here, this process.
            let speaker = if said.is_empty() { None } else { Some(std::process::id()) };
            assert_eq!(ours.speaker(), speaker, "{said:?}");
            heard
        };
        assert_eq!(channel(b"", false), Heard::Nothing);
        assert_eq!(channel(b"rea", false), Heard::Nothing);
        assert_eq!(channel(READY_LINE, false), Heard::Ready);
        assert_eq!(channel(READY_LINE, true), Heard::Ready);
        assert_eq!(channel(b"rea", true), Heard::Closed);
        assert_eq!(channel(b"oops\n", false), Heard::Garbled("oops\n".to_string()));
    }
}
