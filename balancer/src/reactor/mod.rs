//! The master's I/O, behind one completion-style interface with two
//! implementations: [`uring`] (the ops go to the kernel through one ring, in
//! a batch, with one `submit_and_wait` per loop turn) and [`epoll`]
//! (edge-triggered: each op's syscall is made when its fd is ready). Either
//! way the master submits ops and later handles their completions, each
//! tagged with the [`Token`] it was submitted with, so its logic is written
//! once.
//!
//! The ops are the few the master needs: a readable notification (the
//! signalfd), a multishot accept (the listener, the control socket), `send`,
//! `sendmsg` (fds to a worker) and `recv` on sockets, a multishot receive of
//! small messages (workers' acks, copied into the completion), a timeout (the
//! tick), cancel and close. Sends never raise `SIGPIPE`; accepted connections
//! are close-on-exec and arrive owned. The memory an op reads or writes is
//! lent by its owner as a [`Lent`]: the one promise to keep, made where the
//! memory lives, so the master's logic is safe code.

pub(crate) mod batch_wait;
pub mod epoll;
pub(crate) mod sys;
pub mod uring;

use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use ringmaster_engine::Backend;

/// How long a busy master lets events gather before it wakes for them, on
/// either backend: a wait that finds events within this long of its start
/// returns at its end with all that came, one that waited longer (a quiet
/// spell) returns at the first event. It is the latency a handed connection
/// may gain under load (twice that behind a batch waiting for its ack),
/// against a wake-up, a `sendmsg` and an ack per connection. Measured on 2
/// vCPUs under `Connection: close` churn (README): 100 us costs the master
/// about a fifth more CPU per connection than 200 us. After turns that
/// accepted many connections the wait is longer (`batch_wait.rs`).
pub const BATCH_WAIT: Duration = Duration::from_micros(200);

/// Names an op, and its completions; the master packs it with
/// `ringmaster_engine::token::pack`. 0 is never a token.
pub type Token = u64;

/// What an op did: the `Token` it was submitted with and its result, as
/// io_uring reports it.
#[derive(Debug)]
pub struct Completion {
    /// The op's token.
    pub token: Token,
    /// Bytes, or `-errno`; for a successful accept, the new fd's number,
    /// which `accepted` owns.
    pub result: i32,
    /// A multishot op goes on: more completions will follow.
    pub more: bool,
    /// The connection a successful accept made, owned from here.
    pub accepted: Option<OwnedFd>,
    /// The message a multishot receive got (empty for other ops).
    pub message: Datagram,
}

impl Completion {
    /// A completion with no new fd and no message.
    pub fn of(token: Token, result: i32, more: bool) -> Completion {
        Completion { token, result, more, accepted: None, message: Datagram::EMPTY }
    }
}

/// Longest message a multishot receive delivers; longer ones are cut. (A
/// worker's acks, or a line of its text: see `handoff::lanes`.)
pub const DATAGRAM_MAX: usize = 256;

/// One small message, copied out of the kernel's buffer into the completion.
#[derive(Clone, Copy)]
pub struct Datagram {
    len: u16,
    bytes: [u8; DATAGRAM_MAX],
}

impl Datagram {
    /// No message.
    pub const EMPTY: Datagram = Datagram { len: 0, bytes: [0; DATAGRAM_MAX] };

    /// A copy of `bytes`, cut to [`DATAGRAM_MAX`].
    pub fn copy(bytes: &[u8]) -> Datagram {
        let len = bytes.len().min(DATAGRAM_MAX);
        let mut datagram = Datagram::EMPTY;
        datagram.bytes[..len].copy_from_slice(&bytes[..len]);
        datagram.len = len as u16;
        datagram
    }

    /// The message's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Datagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Datagram({:?})", self.as_slice())
    }
}

/// Memory lent to the kernel for one send or receive on one fd. Only the
/// memory's owner makes one (the `unsafe` constructors), promising to keep it
/// where it is, untouched, until the op's completion is handed back to it.
#[derive(Clone, Copy, Debug)]
pub struct Lent {
    fd: RawFd,
    io: LentIo,
}

#[derive(Clone, Copy, Debug)]
enum LentIo {
    Send { buf: *const u8, len: usize },
    Recv { buf: *mut u8, len: usize },
    SendMsg { header: *const libc::msghdr },
}

impl Lent {
    /// A send of `len` bytes from `buf` (the completion may say fewer were sent).
    ///
    /// # Safety
    /// `buf` must stay valid for reads of `len` bytes, unmoved, until the
    /// completion is reported (or the reactor is dropped).
    pub unsafe fn send(fd: RawFd, buf: *const u8, len: usize) -> Lent {
        Lent { fd, io: LentIo::Send { buf, len } }
    }

    /// A receive of up to `len` bytes into `buf` (0 at end of stream).
    ///
    /// # Safety
    /// `buf` must stay valid for writes of `len` bytes, unmoved and unread,
    /// until the completion is reported (or the reactor is dropped).
    pub unsafe fn recv(fd: RawFd, buf: *mut u8, len: usize) -> Lent {
        Lent { fd, io: LentIo::Recv { buf, len } }
    }

    /// A `sendmsg` of the message `header` describes (with its `SCM_RIGHTS`).
    ///
    /// # Safety
    /// `header` and all it points to must stay valid and unmoved until the
    /// completion is reported (or the reactor is dropped).
    pub unsafe fn send_msg(fd: RawFd, header: *const libc::msghdr) -> Lent {
        Lent { fd, io: LentIo::SendMsg { header } }
    }
}

/// The master's I/O backend.
///
/// Nothing happens until [`Reactor::wait`]: ops submitted are started there,
/// and their completions come out of it. At most one op of each direction
/// (reading: readable, accept, receive, timeout; writing: send, sendmsg) may
/// be in flight on one fd.
pub trait Reactor: fmt::Debug {
    /// Completes with `POLLIN` each time `fd` becomes readable, until cancelled.
    fn poll_readable(&mut self, fd: RawFd, token: Token) -> io::Result<()>;

    /// Accepts on `listener` until cancelled or an error ends it (the last
    /// completion, without `more`): each completion is one new connection.
    fn accept(&mut self, listener: RawFd, token: Token) -> io::Result<()>;

    /// Starts a send, receive or sendmsg on memory its owner lent.
    fn start(&mut self, io: Lent, token: Token) -> io::Result<()>;

    /// Receives messages on `fd` until cancelled, its end of stream (a
    /// completion with 0) or an error ends it (the last completion, without
    /// `more`): each completion carries one message in `message`. Running out
    /// of the reactor's receive buffers ends it too (`-ENOBUFS`): arm it again.
    fn recv_multi(&mut self, fd: RawFd, token: Token) -> io::Result<()>;

    /// Completes once, `after` from now (one timeout at a time).
    fn timeout(&mut self, after: Duration, token: Token) -> io::Result<()>;

    /// Ends the op submitted with `token`, if it is still in flight: it
    /// completes with `-ECANCELED` (and no `more`).
    fn cancel(&mut self, token: Token) -> io::Result<()>;

    /// Closes `fd` (with the ops of the same turn, on the ring).
    fn close(&mut self, fd: OwnedFd) -> io::Result<()>;

    /// Starts what was submitted, waits until at least one op completes, and
    /// moves the completions into `out` (cleared first). Size `out` once for
    /// a busy turn: the ring moves no more than its capacity at once.
    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()>;
}

/// The reactor for `backend`.
pub fn reactor_for(backend: Backend) -> io::Result<Box<dyn Reactor>> {
    Ok(match backend {
        Backend::Uring => Box::new(uring::UringReactor::new()?),
        Backend::Epoll => Box::new(epoll::EpollReactor::new()?),
    })
}

#[cfg(test)]
mod tests;
