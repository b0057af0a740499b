//! Where a process's lines go: the log on stderr, the stats line on
//! stdout. A worker writes them as it always did, blocking. The master
//! never blocks on them ([`never_block`]): it is the one process every
//! connection of `rr` and `least` passes through and the one that restarts
//! workers, and a stdout or stderr that is a pipe nobody drains (`| less`
//! left on its first page, a stalled log shipper) held it in `write(2)`
//! with the server answering nothing, after 64 KiB of lines (a few
//! hundred `SIGUSR1`s or reloads). Its writes to a pipe or socket are
//! `RWF_NOWAIT`: what does not fit waits in memory (at most
//! `PENDING_MAX` per stream, in order) and goes out at the next line or
//! the next tick ([`flush`]); lines past that are dropped and counted, and a
//! log line says how many once the stream takes lines again. A named pipe
//! (`mkfifo`) refuses `RWF_NOWAIT` too, so the master opens it again, a
//! non-blocking description of its own (the workers' stays blocking), and
//! writes there. A file or a terminal (which refuse `RWF_NOWAIT`) is
//! written as before.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most bytes kept for a stream that does not take them: about a hundred
/// stats lines of two workers, or a thousand log lines.
const PENDING_MAX: usize = 64 * 1024;

/// The two streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The stats line.
    Stdout,
    /// The log.
    Stderr,
}

impl Stream {
    fn fd(self) -> RawFd {
        match self {
            Stream::Stdout => libc::STDOUT_FILENO,
            Stream::Stderr => libc::STDERR_FILENO,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn state(self) -> &'static Mutex<Pending> {
        match self {
            Stream::Stdout => &STDOUT,
            Stream::Stderr => &STDERR,
        }
    }
}

/// What a stream has not taken yet.
#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    /// Whole lines dropped since the stream last took everything.
    dropped: u64,
    /// The stream refused `RWF_NOWAIT` (a file, a terminal): written blocking.
    blocking: bool,
    /// The stream is a named pipe, which refuses `RWF_NOWAIT`: opened again
    /// non-blocking, for the master alone, and written there.
    fifo: Option<File>,
}

impl Pending {
    const fn new() -> Pending {
        Pending { bytes: Vec::new(), dropped: 0, blocking: false, fifo: None }
    }

    /// Writes `bytes` to `stream` without waiting.
    fn write_nowait(&mut self, stream: Stream, bytes: &[u8]) -> Written {
        if let Some(fifo) = &self.fifo {
            return write_nowait(fifo.as_raw_fd(), bytes, 0);
        }
        match write_nowait(stream.fd(), bytes, libc::RWF_NOWAIT) {
            Written::Unsupported => match reopen_fifo(stream) {
                Some(fifo) => {
                    self.fifo = Some(fifo);
                    self.write_nowait(stream, bytes)
                }
                None => Written::Unsupported,
            },
            written => written,
        }
    }
}

/// `stream` opened again, non-blocking, if it is a named pipe with a reader
/// (`O_NONBLOCK` on the description it shares with the workers would fail
/// their blocking writes). None for anything else: a file, a terminal, or
/// a pipe that cannot be opened again, written blocking as before.
fn reopen_fifo(stream: Stream) -> Option<File> {
    let path = format!("/proc/self/fd/{}", stream.fd());
    if !std::fs::metadata(&path).ok()?.file_type().is_fifo() {
        return None;
    }
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path).ok()
}

static NEVER_BLOCK: AtomicBool = AtomicBool::new(false);
static STDOUT: Mutex<Pending> = Mutex::new(Pending::new());
static STDERR: Mutex<Pending> = Mutex::new(Pending::new());

/// From now on this process's lines never block it (the master's choice).
pub fn never_block() {
    NEVER_BLOCK.store(true, Ordering::Relaxed);
}

/// Writes one whole line (its line end included) to `stream`.
pub fn write(stream: Stream, line: &[u8]) {
    if !NEVER_BLOCK.load(Ordering::Relaxed) {
        write_blocking(stream, line);
        return;
    }
    let mut pending = lock(stream);
    if pending.blocking {
        drop(pending);
        write_blocking(stream, line);
        return;
    }
    push(stream, &mut pending, line);
    let notice = take_notice(stream, &mut pending);
    drop(pending);
    // A stdout that dropped stats lines says so in the log (its readers expect JSON).
    if let Some(count) = notice {
        crate::log!(warn: "{count} stats lines were dropped: stdout did not take them (a pipe nobody drained?)");
    }
}

/// Sends what waits, as far as each stream takes it now (each tick).
pub fn flush() {
    if !NEVER_BLOCK.load(Ordering::Relaxed) {
        return;
    }
    for stream in [Stream::Stderr, Stream::Stdout] {
        let mut pending = lock(stream);
        send_pending(stream, &mut pending);
        let notice = take_notice(stream, &mut pending);
        drop(pending);
        if let Some(count) = notice {
            crate::log!(warn: "{count} stats lines were dropped: stdout did not take them (a pipe nobody drained?)");
        }
    }
}

/// At exit: what waits gets up to `limit` to go out (the final stats line
/// among it), so that an exit neither loses it to a slow reader nor hangs
/// on one that never reads.
pub fn finish(limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        flush();
        let waiting = [Stream::Stderr, Stream::Stdout].into_iter().find(|s| !lock(*s).bytes.is_empty());
        let Some(stream) = waiting else { return };
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        wait_writable(stream, deadline - now);
    }
}

fn lock(stream: Stream) -> std::sync::MutexGuard<'static, Pending> {
    // A line is bytes: a panic elsewhere while holding the lock left nothing half-done here.
    stream.state().lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends what waits, then `line` (what of it the stream does not take
/// waits behind; with [`PENDING_MAX`] waiting already, it is dropped).
fn push(stream: Stream, pending: &mut Pending, line: &[u8]) {
    send_pending(stream, pending);
    if pending.blocking {
        write_blocking(stream, line);
        return;
    }
    if pending.bytes.is_empty() {
        match pending.write_nowait(stream, line) {
            Written::All => return,
            Written::Part(n) => {
                pending.bytes.extend_from_slice(&line[n..]);
                return;
            }
            Written::Unsupported => {
                pending.blocking = true;
                write_blocking(stream, line);
                return;
            }
            // A broken stream (its reader gone): nobody will read the line.
            Written::Failed => return,
            Written::Nothing => {}
        }
    }
    if pending.bytes.len() + line.len() <= PENDING_MAX {
        pending.bytes.extend_from_slice(line);
    } else {
        pending.dropped += 1;
    }
}

/// Sends what waits, as far as the stream takes it now: whole lines, at
/// most [`PIPE_BUF`] bytes a write, so that a full pipe takes a write whole
/// or not at all and never ends in the middle of a line, where the next
/// line of a worker or of the master's other stream would land.
fn send_pending(stream: Stream, pending: &mut Pending) {
    while !pending.bytes.is_empty() {
        let chunk = whole_lines(&pending.bytes);
        let bytes = std::mem::take(&mut pending.bytes);
        let written = pending.write_nowait(stream, &bytes[..chunk]);
        pending.bytes = bytes;
        match written {
            Written::All => {
                pending.bytes.drain(..chunk);
            }
            Written::Part(n) => {
                pending.bytes.drain(..n);
            }
            Written::Unsupported => {
                pending.blocking = true;
                let bytes = std::mem::take(&mut pending.bytes);
                write_blocking(stream, &bytes);
            }
            Written::Failed => pending.bytes.clear(),
            Written::Nothing => return,
        }
    }
}

/// Bytes a pipe writes whole, or not at all (without `O_NONBLOCK` or
/// `RWF_NOWAIT` it waits for room instead), so lines from several writers
/// do not mix.
const PIPE_BUF: usize = libc::PIPE_BUF;

/// How much of `bytes` to write at once: the whole lines in its first
/// [`PIPE_BUF`] bytes, else its first line (a longer one can only go in
/// parts, as a blocking write does), else all of it.
fn whole_lines(bytes: &[u8]) -> usize {
    let head = &bytes[..bytes.len().min(PIPE_BUF)];
    if let Some(end) = head.iter().rposition(|&b| b == b'\n') {
        return end + 1;
    }
    bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |end| end + 1)
}

/// Once every waiting byte is out: the count of lines dropped before, to
/// be told. stderr tells its own here, in its place in the stream; stdout's
/// count is returned for the log to tell.
fn take_notice(stream: Stream, pending: &mut Pending) -> Option<u64> {
    if pending.dropped == 0 || !pending.bytes.is_empty() {
        return None;
    }
    let count = std::mem::take(&mut pending.dropped);
    if stream == Stream::Stdout {
        return Some(count);
    }
    let line = super::format_notice(format_args!(
        "{count} log lines were dropped: {} did not take them (a pipe nobody drained?)",
        stream.name()
    ));
    push(stream, pending, line.as_bytes());
    None
}

enum Written {
    All,
    Part(usize),
    /// Nothing now: the stream is full.
    Nothing,
    /// The stream is broken (`EPIPE`, a closed descriptor): nothing will go.
    Failed,
    /// The stream refuses `RWF_NOWAIT`.
    Unsupported,
}

/// One `pwritev2` of `bytes` with `flags` (`RWF_NOWAIT`, or none on a
/// non-blocking descriptor).
fn write_nowait(fd: RawFd, bytes: &[u8], flags: libc::c_int) -> Written {
    let iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    loop {
        // SAFETY: one iovec over a live slice of the given length; offset -1
        // writes at the stream's position, as write(2) does.
        let n = unsafe { libc::pwritev2(fd, &iov, 1, -1, flags) };
        if n >= 0 {
            let n = n as usize;
            return if n >= bytes.len() { Written::All } else { Written::Part(n) };
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Written::Nothing,
            Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ESPIPE) => return Written::Unsupported,
            _ => return Written::Failed,
        }
    }
}

fn write_blocking(stream: Stream, bytes: &[u8]) {
    // Nothing sensible is left to do if the stream itself fails.
    let _ = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        Stream::Stderr => io::stderr().lock().write_all(bytes),
    };
}

/// Waits at most `limit` for `stream` to take bytes.
fn wait_writable(stream: Stream, limit: Duration) {
    let mut poll = libc::pollfd { fd: stream.fd(), events: libc::POLLOUT, revents: 0 };
    let ms = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one live pollfd; the result only ends the wait.
    unsafe { libc::poll(&mut poll, 1, ms) };
}
