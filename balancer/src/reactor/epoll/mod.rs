//! The master's I/O on epoll, for where io_uring is blocked. Edge-triggered:
//! each op's syscall is made when its fd is ready, and its result reported as
//! the completion the ring would post.
//!
//! A busy master wakes once per batch, as on the ring: a wait that finds
//! events within [`BATCH_WAIT`](super::BATCH_WAIT) of its start (longer
//! after busy turns: `batch_wait.rs`) sleeps out the rest of it and takes
//! everything that came by then. While it stays busy, the next wait sleeps
//! first and then takes what came, without blocking in `epoll_wait`:
//! one wake-up per batch, not two (the event's, then the sleep's). The sends
//! a busy turn starts (a batch of fds to each worker) complete at once and
//! go back with the next batch, after the sleep: one turn and one
//! `epoll_wait` per batch, not one for the sends and one for what came.
//!
//! Reading ops (readable, accept, recv, multishot recv, the tick's timerfd) are parked at
//! once: registering the fd (`EPOLL_CTL_ADD`, or `MOD` if it is registered)
//! makes the kernel report it if it is ready already. Writing ops (send,
//! sendmsg) are tried at once and parked only on `EAGAIN`. A parked op is
//! tried again on each readiness event of its direction until it would block
//! again; multishot ops (readable, accept, multishot recv) stay parked until
//! cancelled, or until an error (or a receive's end of stream) ends them, as
//! on the ring. Sockets need not be
//! non-blocking (`MSG_DONTWAIT`), except a listener, which is made so.
//!
//! This file: the ops, parked and tried; `wait.rs`: the wait and its batches.

mod wait;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::batch_wait::BatchWait;
use super::{sys, Completion, Datagram, Lent, LentIo, Reactor, Token, DATAGRAM_MAX};

/// Events taken from one `epoll_wait`.
const EVENTS: usize = 256;
/// Messages one multishot receive takes per readiness before other fds get a
/// turn (the rest are read in the next turn, without waiting).
const RECV_BATCH: usize = 64;

/// What a parked op does when its fd is ready.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Readable,
    Accept,
    RecvMulti,
    Tick,
    Lent(LentIo),
}

impl Kind {
    fn writes(self) -> bool {
        matches!(self, Kind::Lent(LentIo::Send { .. } | LentIo::SendMsg { .. }))
    }
}

/// A completion without a new fd or a message.
fn completion(token: Token, result: i32, more: bool) -> Completion {
    Completion::of(token, result, more)
}

#[derive(Debug)]
struct Op {
    fd: RawFd,
    token: Token,
    kind: Kind,
}

/// The ops waiting on one fd: at most one per direction.
#[derive(Debug, Default)]
struct Parked {
    read: Option<Op>,
    write: Option<Op>,
}

impl Parked {
    fn side(&mut self, writes: bool) -> &mut Option<Op> {
        if writes {
            &mut self.write
        } else {
            &mut self.read
        }
    }

    fn interest(&self) -> u32 {
        let mut events = libc::EPOLLET as u32;
        if self.read.is_some() {
            events |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        }
        if self.write.is_some() {
            events |= libc::EPOLLOUT as u32;
        }
        events
    }
}

/// What trying an op came to.
enum Outcome {
    /// It is over; its completion is out.
    Done,
    /// It would block: it waits for the fd's next readiness.
    Blocked,
    /// A multishot op stopped early with more to do: try it again next turn.
    Again,
}

/// The master's epoll instance and the ops waiting on it.
#[derive(Debug)]
pub struct EpollReactor {
    epoll: OwnedFd,
    timer: OwnedFd,
    /// Submitted since the last wait: started by the next one.
    fresh: VecDeque<Op>,
    parked: HashMap<RawFd, Parked>,
    /// Fds registered with epoll, as far as we know: only picks ADD or MOD
    /// first (a closed fd's number reused shows up as ENOENT, and is fixed).
    registered: HashSet<RawFd>,
    /// Fds whose multishot read op stopped early: tried again without waiting.
    again: Vec<RawFd>,
    /// Completions of cancelled ops, reported by the next wait.
    cancelled: Vec<Completion>,
    events: Vec<libc::epoll_event>,
    /// The last wait found events within its batch wait of its start: the
    /// next one sleeps out its batch wait before it looks.
    busy: bool,
    /// How long a batch wait is.
    batch_wait: BatchWait,
}

impl EpollReactor {
    /// An epoll instance and a timerfd for the tick.
    pub fn new() -> io::Result<EpollReactor> {
        Ok(EpollReactor {
            epoll: sys::epoll_create()?,
            timer: sys::timerfd()?,
            fresh: VecDeque::with_capacity(256),
            parked: HashMap::with_capacity(256),
            registered: HashSet::with_capacity(256),
            again: Vec::new(),
            cancelled: Vec::new(),
            events: Vec::with_capacity(EVENTS),
            busy: false,
            batch_wait: BatchWait::default(),
        })
    }

    fn submit(&mut self, fd: RawFd, token: Token, kind: Kind) -> io::Result<()> {
        self.fresh.push_back(Op { fd, token, kind });
        Ok(())
    }

    /// Starts a submitted op: a write is tried now, a read waits for readiness.
    fn start(&mut self, op: Op, out: &mut Vec<Completion>) {
        if op.kind.writes() {
            match self.attempt(&op, out) {
                Outcome::Done => return,
                Outcome::Blocked | Outcome::Again => {}
            }
        }
        self.park(op, out);
    }

    /// Waits for `op`'s fd; an fd epoll refuses fails the op.
    fn park(&mut self, op: Op, out: &mut Vec<Completion>) {
        let (fd, token, writes) = (op.fd, op.token, op.kind.writes());
        let parked = self.parked.entry(fd).or_default();
        if parked.side(writes).is_some() {
            // The interface allows one op per direction: refuse the second.
            out.push(completion(token, -libc::EBUSY, false));
            return;
        }
        *parked.side(writes) = Some(op);
        let interest = parked.interest();
        if let Err(e) = self.register(fd, interest) {
            if let Some(op) = self.parked.get_mut(&fd).and_then(|p| p.side(writes).take()) {
                out.push(completion(op.token, errno(&e), false));
            }
        }
    }

    /// Registers `fd` for `interest`, or changes its interest; either way the
    /// kernel reports it if it is ready now.
    fn register(&mut self, fd: RawFd, interest: u32) -> io::Result<()> {
        let epoll = self.epoll.as_fd();
        let (first, second) = if self.registered.contains(&fd) {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        match sys::epoll_ctl(epoll, first, fd, interest) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EEXIST)) => {
                sys::epoll_ctl(epoll, second, fd, interest)?
            }
            other => other?,
        }
        self.registered.insert(fd);
        Ok(())
    }

    /// Tries the op parked on `fd` in one direction, after a readiness event.
    fn retry(&mut self, fd: RawFd, writes: bool, out: &mut Vec<Completion>) {
        let Some(op) = self.parked.get_mut(&fd).and_then(|p| p.side(writes).take()) else { return };
        match self.attempt(&op, out) {
            // An accept that ended stops listening: with no op parked, the
            // listener (maybe shared with the workers) must not wake us.
            Outcome::Done if matches!(op.kind, Kind::Accept | Kind::RecvMulti) => self.watch_what_is_parked(fd),
            Outcome::Done => {
                if self.parked.get(&fd).is_some_and(|p| p.read.is_none() && p.write.is_none()) {
                    self.parked.remove(&fd);
                }
            }
            outcome => {
                if matches!(outcome, Outcome::Again) {
                    self.again.push(fd);
                }
                if let Some(parked) = self.parked.get_mut(&fd) {
                    *parked.side(writes) = Some(op);
                }
            }
        }
    }

    /// After an op left `fd` for good (cancelled, or an accept ended):
    /// watches only for what is still parked, or nothing. (A finished receive
    /// or send does not come here: its interest is about to be renewed, and a
    /// stale one costs at most a spurious wake-up.)
    fn watch_what_is_parked(&mut self, fd: RawFd) {
        match self.parked.get(&fd).filter(|p| p.read.is_some() || p.write.is_some()).map(Parked::interest) {
            Some(interest) => {
                // Failing leaves a wider interest than needed: spurious wake-ups at worst.
                let _ = self.register(fd, interest);
            }
            None => {
                self.parked.remove(&fd);
                if self.registered.remove(&fd) {
                    // Fails only if the fd is closed already, which removed it as well.
                    let _ = sys::epoll_ctl(self.epoll.as_fd(), libc::EPOLL_CTL_DEL, fd, 0);
                }
            }
        }
    }

    /// Makes `op`'s syscall(s) now.
    fn attempt(&mut self, op: &Op, out: &mut Vec<Completion>) -> Outcome {
        let token = op.token;
        let result = match op.kind {
            Kind::Readable => {
                out.push(completion(token, libc::POLLIN as i32, true));
                return Outcome::Blocked;
            }
            Kind::Accept => {
                return match sys::accept_counted(op.fd, token, out) {
                    sys::Burst::Done => Outcome::Done,
                    sys::Burst::Drained => Outcome::Blocked,
                    sys::Burst::More => Outcome::Again,
                }
            }
            Kind::RecvMulti => return recv_burst(op.fd, token, out),
            // As on the ring, an expired timeout reports ETIME.
            Kind::Tick => sys::read_timer(self.timer.as_fd()).and(Err(io::Error::from_raw_os_error(libc::ETIME))),
            // SAFETY: the memory's owner promised, making the `Lent`, to keep it until the completion.
            Kind::Lent(LentIo::Recv { buf, len }) => retry_interrupted(|| unsafe { sys::recv(op.fd, buf, len) }),
            // SAFETY: as above.
            Kind::Lent(LentIo::Send { buf, len }) => retry_interrupted(|| unsafe { sys::send(op.fd, buf, len) }),
            // SAFETY: as above, for the header and all it points to.
            Kind::Lent(LentIo::SendMsg { header }) => retry_interrupted(|| unsafe { sys::sendmsg(op.fd, header) }),
        };
        let result = match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Blocked,
            Ok(n) => n.min(i32::MAX as usize) as i32,
            Err(e) => errno(&e),
        };
        out.push(completion(token, result, false));
        Outcome::Done
    }
}

/// Receives the messages waiting on `fd`, up to [`RECV_BATCH`], one
/// completion each.
fn recv_burst(fd: RawFd, token: Token, out: &mut Vec<Completion>) -> Outcome {
    let mut buffer = [0u8; DATAGRAM_MAX];
    for _ in 0..RECV_BATCH {
        // SAFETY: `buffer` is a live local array of DATAGRAM_MAX bytes.
        match retry_interrupted(|| unsafe { sys::recv(fd, buffer.as_mut_ptr(), DATAGRAM_MAX) }) {
            Ok(0) => {
                out.push(completion(token, 0, false));
                return Outcome::Done;
            }
            Ok(n) => {
                let n = n.min(DATAGRAM_MAX);
                let message = Datagram::copy(&buffer[..n]);
                out.push(Completion { token, result: n as i32, more: true, accepted: None, message });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Blocked,
            Err(e) => {
                out.push(completion(token, errno(&e), false));
                return Outcome::Done;
            }
        }
    }
    Outcome::Again
}

fn retry_interrupted(mut call: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

fn errno(error: &io::Error) -> i32 {
    -error.raw_os_error().unwrap_or(libc::EIO)
}

impl Reactor for EpollReactor {
    fn poll_readable(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        self.submit(fd, token, Kind::Readable)
    }

    fn accept(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        // A burst ends at EAGAIN: the listener must not block. In `shared`
        // mode the workers (on epoll too) share it non-blocking as well.
        sys::set_nonblocking(listener)?;
        self.submit(listener, token, Kind::Accept)
    }

    fn start(&mut self, lent: Lent, token: Token) -> io::Result<()> {
        self.submit(lent.fd, token, Kind::Lent(lent.io))
    }

    fn recv_multi(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        self.submit(fd, token, Kind::RecvMulti)
    }

    fn timeout(&mut self, after: Duration, token: Token) -> io::Result<()> {
        sys::timerfd_once(self.timer.as_fd(), after)?;
        self.submit(self.timer.as_raw_fd(), token, Kind::Tick)
    }

    fn cancel(&mut self, token: Token) -> io::Result<()> {
        let fresh = self.fresh.iter().position(|op| op.token == token).and_then(|at| self.fresh.remove(at));
        let parked = || {
            let mut sides = self.parked.values_mut().flat_map(|p| [&mut p.read, &mut p.write]);
            sides.find(|side| side.as_ref().is_some_and(|op| op.token == token)).and_then(Option::take)
        };
        let Some(op) = fresh.or_else(parked) else { return Ok(()) };
        self.watch_what_is_parked(op.fd);
        self.cancelled.push(completion(token, -libc::ECANCELED, false));
        Ok(())
    }

    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.registered.remove(&fd.as_raw_fd());
        drop(fd);
        Ok(())
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        let gathered = self.gather(out);
        self.batch_wait.after_turn(out.iter().filter(|c| c.accepted.is_some()).count());
        gathered
    }
}

#[cfg(test)]
mod tests;
