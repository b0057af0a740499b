//! The master's stdout and stderr as pipes nobody drains (`ringmaster |
//! less` left on its first page, a stalled log shipper): the master serves
//! on, and the lines it could not write go out once the reader reads again.
//! Until 2026-12-05 its `write(2)` blocked once the pipe was full, and with
//! it the whole master: a `SIGUSR1` or a reload more and `rr` answered
//! nothing, nor did the control socket.

use crate::util;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::upgrade::{dup_high, KillOnDrop};
use util::*;

/// The smallest pipe Linux makes: one page.
const PIPE_SIZE: usize = 4096;
/// Rounds of a line more and a request once the pipe is (nearly) full:
/// more lines than the room left, even if some signals come as one.
const ROUNDS: usize = 10;

/// A pipe of one page: (read end, non-blocking; write end).
fn small_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array with two new fds.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both are new fds nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntls on fds we own.
    unsafe {
        assert!(libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) >= 0);
        // The master's end blocks, as a pipe from a shell does.
        let flags = libc::fcntl(write.as_raw_fd(), libc::F_GETFL);
        assert!(libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0);
    }
    (read, write)
}

/// A named pipe (`mkfifo`) of one page in `dir`, as `ringmaster >
/// /run/log.fifo` gives the master: (read end, non-blocking; write end,
/// blocking). Linux refuses `RWF_NOWAIT` on a named pipe (`EOPNOTSUPP`)
/// where it takes it on one from `pipe(2)`.
fn small_fifo(dir: &std::path::Path) -> (OwnedFd, OwnedFd) {
    use std::os::unix::ffi::OsStrExt;
    let path = dir.join("stdout.fifo");
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: a NUL-terminated path; the fds opened are owned at once.
    let (read, write) = unsafe {
        assert_eq!(libc::mkfifo(c_path.as_ptr(), 0o600), 0, "mkfifo: {}", io::Error::last_os_error());
        let r = libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC);
        assert!(r >= 0, "open the fifo to read: {}", io::Error::last_os_error());
        let w = libc::open(c_path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        assert!(w >= 0, "open the fifo to write: {}", io::Error::last_os_error());
        (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w))
    };
    // SAFETY: a plain fcntl on an fd we own.
    unsafe { assert!(libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) >= 0) };
    (read, write)
}

/// Bytes waiting in the pipe.
fn queued(read: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(read.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n as usize
}

/// Reads what the pipe holds now; `None` at its end (every writer gone).
fn read_now(read: &OwnedFd, into: &mut Vec<u8>) -> Option<()> {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: reading into a live buffer of its length.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return None,
            n if n > 0 => into.extend_from_slice(&buf[..n as usize]),
            _ => return Some(()),
        }
    }
}

/// `cmd` with `from` as its descriptor `to` (stdout 1, stderr 2).
fn with_fd(cmd: &mut Command, from: &OwnedFd, to: RawFd) -> OwnedFd {
    let high = dup_high(from.as_raw_fd());
    let raw = high.as_raw_fd();
    // SAFETY: only dup2, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, to) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    high
}

/// Starts a master (2 workers, `rr`) whose descriptors `onto` (stdout 1,
/// stderr 2) are the pipe's write end, and reads `read` until its
/// listening line: the master, its address and what was read so far.
fn start_onto_pipe(read: &OwnedFd, write: OwnedFd, onto: &[RawFd]) -> (KillOnDrop, std::net::SocketAddr, Vec<u8>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--workers", "2", "--mode", "rr", "--shutdown-timeout", "2"]);
    if let Some(backend) = test_backend() {
        cmd.arg("--backend").arg(backend);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let _kept: Vec<OwnedFd> = onto.iter().map(|&to| with_fd(&mut cmd, &write, to)).collect();
    let child = KillOnDrop(cmd.spawn().expect("spawn the master"));
    drop(write);
    let mut out = Vec::new();
    let mut addr = None;
    let listening = eventually(START_TIMEOUT, || {
        read_now(read, &mut out);
        addr = String::from_utf8_lossy(&out).lines().find_map(|l| parse_listening_line(log_message(l)));
        addr.is_some()
    });
    assert!(listening, "no listening line: {}", String::from_utf8_lossy(&out));
    (child, addr.expect("listening"), out)
}

/// Fills the pipe with what `act` makes the master write (each call must
/// write at least one line): acts, waits for the bytes, and stops once
/// the next line might not fit; then acts `beyond` times more, which the
/// old master would have blocked on. Returns how many acts it saw written.
fn fill(read: &OwnedFd, beyond: usize, act: impl Fn()) -> usize {
    let mut acts = 0;
    let mut longest = 0;
    loop {
        let before = queued(read);
        if before + longest.max(1) > PIPE_SIZE - 400 {
            break;
        }
        act();
        acts += 1;
        let grew = eventually(IO_TIMEOUT, || queued(read) > before);
        assert!(grew, "the master wrote nothing for act {acts} ({before} bytes queued)");
        longest = longest.max(queued(read) - before);
    }
    for _ in 0..beyond {
        act();
    }
    acts
}

/// Each round the master has an act to write for, then must answer a new
/// connection (`rr`: it accepts and hands over every one).
fn still_serves(s: &Server, rounds: usize, act: impl Fn()) {
    for round in 0..rounds {
        act();
        let answered = Conn::answered_within(s.addr(), IO_TIMEOUT);
        assert!(answered.is_some(), "round {round}: no answer within {IO_TIMEOUT:?}: the master blocks on its output");
    }
}

#[test]
fn a_stdout_nobody_reads_does_not_stop_the_master() {
    let (read, write) = small_pipe();
    let mut cmd = Command::new(BIN);
    let _keep = with_fd(&mut cmd, &write, libc::STDOUT_FILENO);
    let mut s = Server::start_command(cmd, &["--workers", "2", "--mode", "rr"]);
    let usr1 = || s.signal(libc::SIGUSR1);
    let written = fill(&read, 3, usr1);
    still_serves(&s, ROUNDS, usr1);
    // Read again: the lines that waited come (signals sent together may
    // have been one), whole; and a new one after them.
    let mut out = Vec::new();
    let count = |out: &[u8]| out.iter().filter(|&&b| b == b'\n').count();
    let waited = eventually(Duration::from_secs(10), || {
        read_now(&read, &mut out);
        count(&out) > written && out.ends_with(b"\n")
    });
    assert!(waited, "{} stats lines, {written} before stdout was full", count(&out));
    let before = count(&out);
    usr1();
    let fresh = eventually(IO_TIMEOUT, || {
        read_now(&read, &mut out);
        count(&out) > before && out.ends_with(b"\n")
    });
    assert!(fresh, "no stats line for a SIGUSR1 once stdout was read");
    for line in String::from_utf8_lossy(&out).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a stats line ({e}): {line}"));
        assert_eq!(v["workers"].as_array().map(Vec::len), Some(2), "{line}");
    }
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    let log = s.log();
    assert!(!log.iter().any(|l| l.contains("dropped")), "nothing was dropped: {log:?}");
}

/// The same with stdout a named pipe (`mkfifo`) nobody reads: the README
/// says a pipe nobody drains does not stop the master, and a named one is
/// a pipe; but the kernel refuses `RWF_NOWAIT` there, and the master then
/// writes blocking, as to a file, and stands still once the pipe is full.
#[test]
fn a_stdout_named_pipe_nobody_reads_does_not_stop_the_master() {
    let dir = util::upgrade::TempDir::new("stdout-fifo");
    let (read, write) = small_fifo(dir.path());
    let mut cmd = Command::new(BIN);
    let _keep = with_fd(&mut cmd, &write, libc::STDOUT_FILENO);
    drop(write);
    let s = Server::start_command(cmd, &["--workers", "2", "--mode", "rr"]);
    let usr1 = || s.signal(libc::SIGUSR1);
    fill(&read, 3, usr1);
    still_serves(&s, ROUNDS, usr1);
    let mut out = Vec::new();
    read_now(&read, &mut out);
}

#[test]
fn a_stderr_nobody_reads_does_not_stop_the_master() {
    let (read, write) = small_pipe();
    // Read the log up to the listening line, then no more for a while.
    let (mut child, addr, mut log) = start_onto_pipe(&read, write, &[libc::STDERR_FILENO]);
    let pid = child.0.id();
    // Every SIGHUP logs a line (a reload's, or why not), and reloads log on.
    let hup = || util::procs::kill(pid, libc::SIGHUP);
    fill(&read, 3, hup);
    for round in 0..ROUNDS {
        hup();
        let answered = Conn::answered_within(addr, IO_TIMEOUT);
        assert!(answered.is_some(), "round {round}: no answer within {IO_TIMEOUT:?}: the master blocks on its log");
    }
    // Read again: the lines that waited come, whole; the reloads end.
    let done = eventually(Duration::from_secs(20), || {
        read_now(&read, &mut log);
        let text = String::from_utf8_lossy(&log);
        text.lines().any(|l| l.contains("reload: done")) && text.ends_with('\n')
    });
    let text = String::from_utf8_lossy(&log).into_owned();
    assert!(done, "the reloads' lines did not come once stderr was read:\n{text}");
    for line in text.lines() {
        assert!(parse_log_line(line).is_some(), "not a whole log line: {line:?}\n{text}");
    }
    util::procs::kill(pid, libc::SIGTERM);
    let exited = eventually(Duration::from_secs(10), || {
        read_now(&read, &mut log);
        matches!(child.0.try_wait(), Ok(Some(status)) if status.success())
    });
    assert!(exited, "the master did not exit 0 after SIGTERM:\n{}", String::from_utf8_lossy(&log));
}

/// `2>&1 | reader`: stdout and stderr are one pipe, read slowly. A line
/// of one stream must never land in the middle of a line of the other
/// (nor of a worker's): until 2026-12-05 the master wrote what waited for
/// a full pipe in one write, which the pipe took in part, cut mid-line;
/// the next stats line went into the room a read made, before the rest.
#[test]
fn lines_of_stdout_and_stderr_on_one_slow_pipe_stay_whole() {
    let (read, write) = small_pipe();
    let (mut child, addr, mut out) = start_onto_pipe(&read, write, &[libc::STDOUT_FILENO, libc::STDERR_FILENO]);
    let pid = child.0.id();
    let usr1 = || util::procs::kill(pid, libc::SIGUSR1);
    // Stats lines for a few pages wait in the master (an answered
    // connection says it went round its loop, so took each signal).
    fill(&read, 0, usr1);
    for _ in 0..16 {
        usr1();
        assert!(Conn::answered_within(addr, IO_TIMEOUT).is_some(), "the master blocks on its output");
    }
    for round in 0..ROUNDS {
        // Stats lines take the room (the whole page, ending in the middle
        // of a line, before the fix: a one-page pipe takes bytes again
        // only once it is empty)...
        read_now(&read, &mut out);
        usr1();
        let wrote = eventually(IO_TIMEOUT, || queued(&read) > 0);
        assert!(wrote, "round {round}: the master wrote nothing into an empty pipe");
        // ...then a log line, which must not go before the stats line ends.
        read_now(&read, &mut out);
        util::procs::kill(pid, libc::SIGHUP);
        let logged = eventually(IO_TIMEOUT, || queued(&read) > 0);
        assert!(logged, "round {round}: the master logged nothing into an empty pipe");
    }
    util::procs::kill(pid, libc::SIGTERM);
    let exited = eventually(Duration::from_secs(20), || {
        read_now(&read, &mut out);
        matches!(child.0.try_wait(), Ok(Some(status)) if status.success())
    });
    read_now(&read, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(exited, "the master did not exit 0 after SIGTERM:\n{text}");
    let mut stats = 0;
    for line in text.lines() {
        if line.starts_with('{') {
            let v: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(v.is_ok(), "a stats line with something in its middle: {line:?}\n{text}");
            stats += 1;
        } else {
            let whole = parse_log_line(line).is_some() && !line.contains("{\"mode\"");
            assert!(whole, "a log line with something in its middle: {line:?}\n{text}");
        }
    }
    assert!(stats > ROUNDS / 2, "{stats} stats lines for {ROUNDS} SIGUSR1s and the exit:\n{text}");
}
