//! The epoll driver, for where io_uring is blocked: edge-triggered epoll,
//! non-blocking sockets and plain syscalls around the same connection state
//! machine. Connections read into one receive buffer (what a read leaves
//! unparsed goes to the connection's carry buffer) and send the same
//! preformatted slices with `sendmsg`; a timerfd ticks; the listener is
//! watched with `EPOLLEXCLUSIVE` so one waiter wakes per connection.
//!
//! Nothing here allocates after start: events, the receive buffer and the
//! list of connections with more to read are all sized at start.
//!
//! This file: the loop, where connections come from, time and draining;
//! `connection.rs`: reading and sending on one connection.

mod connection;
mod read_queue;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::SystemTime;

use super::core::Core;
use super::handed::{self, Driver};
use super::{next_queued, Origin, TICK};
use crate::channel::recv_nonblocking;
use crate::conn::Connection;
use crate::refused;
use crate::slab::Slab;
use crate::sys::epoll::{self, Epoll, Event};
use crate::sys::socket;
use crate::sys::timerfd::Ticker;
use crate::token::{self, Op};
use read_queue::ReadQueue;

/// Bytes one `recv` reads.
const RECV_BUFFER: usize = 64 * 1024;
/// Reads one connection gets per turn before the others have theirs.
const READS_PER_TURN: usize = 16;
/// Connections one turn accepts before it serves what it has.
const ACCEPTS_PER_TURN: usize = 64;
/// Connections a worker accepts on a shared listener before it lets another
/// worker be woken first ([`EpollWorker::step_back`]): fair within a few
/// connections, for two `epoll_ctl` calls per that many.
const STEP_BACK_EVERY: usize = 16;
/// Events one wait returns at most.
const EVENTS: usize = 1024;

/// A connection and what epoll last said of its socket.
#[derive(Debug, Default)]
struct Slot {
    conn: Connection,
    fd: Option<OwnedFd>,
    /// The socket may hold input not read yet (edge-triggered: no new event comes for it).
    readable: bool,
    /// The last send found the socket's buffer full: wait for `EPOLLOUT`.
    write_blocked: bool,
    /// The peer's FIN (or an error) was signalled: read on until a read says
    /// so, since no new edge comes for it once the data before it is read.
    hung_up: bool,
    /// Accepted here or handed over by the master (the close sends the FIN then).
    origin: Origin,
}

pub(super) struct EpollWorker<'a> {
    epoll: Epoll,
    ticker: Ticker,
    conns: Slab<Slot>,
    core: Core<'a>,
    events: Vec<Event>,
    recv_buffer: Box<[u8]>,
    /// Connections that stopped reading with input left (their turn ended).
    more_to_read: ReadQueue,
    /// The listener is in the epoll set (a full or draining worker takes it out).
    listening: bool,
    /// Accepting ran out of fds or memory, or the kernel would not watch the
    /// listener again: the listener waits for the next tick.
    accepts_starved: bool,
    /// Connections accepted since the worker last stepped back.
    accepted_since_step_back: usize,
}

impl<'a> EpollWorker<'a> {
    pub(super) fn new(mut core: Core<'a>) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        let ticker = Ticker::every(TICK)?;
        epoll.add(ticker.as_fd(), epoll::IN, token::encode(Op::Tick, 0, 0))?;
        if let Some(channel) = &core.sources.channel {
            epoll.add(channel.as_fd(), epoll::IN, token::encode(Op::Channel, 0, 0))?;
        }
        if let Some(shutdown) = &core.sources.shutdown {
            epoll.add(shutdown.as_fd(), epoll::IN, token::encode(Op::Shutdown, 0, 0))?;
        }
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes (and the master): every accept on it
            // must expect EAGAIN, which io_uring accepts handle as well.
            socket::set_nonblocking(listener.as_fd())?;
        }
        core.hold_plain_descriptors();
        // As many slots as it can hold: full when the master sees it full.
        let slots = core.capacity();
        let conns = Slab::new(slots, Slot::default)
            .map_err(|e| core.refused_per_connection(e, "connection slots", Slab::<Slot>::BYTES_PER_SLOT))?;
        let more_to_read = ReadQueue::new(slots)
            .map_err(|e| core.refused_per_connection(e, "read queue", ReadQueue::BYTES_PER_SLOT))?;
        // Its last reservation: room for the events and the receive buffer
        // below, allocated without one (a refusal aborts).
        refused::keep_headroom("read queue")?;
        Ok(EpollWorker {
            epoll,
            ticker,
            conns,
            core,
            events: Vec::with_capacity(EVENTS),
            recv_buffer: vec![0u8; RECV_BUFFER].into_boxed_slice(),
            more_to_read,
            listening: false,
            accepts_starved: false,
            accepted_since_step_back: 0,
        })
    }

    pub(super) fn serve(&mut self) -> io::Result<()> {
        self.watch_listener()?;
        self.core.ready();
        loop {
            if !self.core.begin_turn(self.conns.len()) {
                break;
            }
            let timeout = if self.more_to_read.is_empty() { -1 } else { 0 };
            self.epoll.wait(&mut self.events, timeout)?;
            self.core.woke();
            for i in 0..self.events.len() {
                let event = self.events[i];
                let (events, token) = (event.events, event.u64);
                self.on_event(token, events)?;
            }
            self.read_more()?;
            // Slots freed in this turn make room for accepts again.
            self.watch_listener()?;
            if !self.core.flush_acks(self.conns.len()) {
                self.master_gone()?;
            }
            while let Some(fd) = self.core.late_closes.next_due(self.core.now) {
                drop(fd);
            }
        }
        self.core.stopped();
        Ok(())
    }

    fn on_event(&mut self, token: u64, events: u32) -> io::Result<()> {
        let Some((op, slot, generation)) = token::decode(token) else { return Ok(()) };
        match op {
            Op::Recv => self.on_socket(slot, generation, events),
            Op::Accept => self.on_listener(),
            Op::Channel => self.on_channel(),
            Op::Tick => self.on_tick(),
            Op::Shutdown => self.start_drain(),
            // Ring ops only: epoll watches carry no such token.
            Op::Send | Op::HalfClose | Op::Unacknowledged | Op::Reset | Op::RecvSpare => Ok(()),
        }
    }

    // --- sources of connections ----------------------------------------------------------

    /// Puts the listener in the epoll set when the worker can take
    /// connections, and takes it out when it cannot (full, starved, draining).
    fn watch_listener(&mut self) -> io::Result<()> {
        if self.core.sources.listener.is_some() {
            self.core.note_room(self.conns.vacant());
        }
        let Some(listener) = &self.core.sources.listener else { return Ok(()) };
        let wanted = !self.core.draining && !self.accepts_starved && self.conns.vacant() > 0;
        if wanted && !self.listening {
            let events = epoll::IN | epoll::EXCLUSIVE;
            if self.epoll.add(listener.as_fd(), events, token::encode(Op::Accept, 0, 0)).is_err() {
                self.listener_unwatched();
                return Ok(());
            }
        } else if !wanted && self.listening {
            // EPOLLEXCLUSIVE cannot be modified, only deleted and added again.
            self.epoll.delete(listener.as_fd())?;
        }
        self.listening = wanted;
        Ok(())
    }

    /// The kernel would not watch the listener again (`ENOMEM`, or the
    /// user's `fs.epoll.max_user_watches`, which other workers'
    /// connections may have taken since this one let its watch go): as for
    /// a connection it cannot watch, the worker leaves the queue to the
    /// others until its next tick, and serves on with what it holds. Until
    /// 2026-12-07 the error ended its loop, and every connection with it.
    fn listener_unwatched(&mut self) {
        self.listening = false;
        self.accepts_starved = true;
    }

    fn on_listener(&mut self) -> io::Result<()> {
        let mut accepted = 0;
        for _ in 0..ACCEPTS_PER_TURN {
            if self.conns.vacant() == 0 || self.core.draining {
                break;
            }
            let Some(listener) = &self.core.sources.listener else { break };
            match socket::accept(listener.as_fd()) {
                Ok(Some(fd)) => {
                    if !self.adopt(fd, Origin::Accepted)? {
                        // It could not be watched, and is closed: leave the
                        // queue to the other workers until the next tick.
                        self.core.counts.rejected += 1;
                        self.accepts_starved = true;
                        break;
                    }
                    accepted += 1;
                }
                Ok(None) => break,
                // EINVAL: the listener no longer listens (the master stopping
                // shut it down just before this worker's drain began).
                Err(e) if e.raw_os_error().is_some_and(|n| crate::sys::out_of_resources(n) || n == libc::EINVAL) => {
                    if e.raw_os_error().is_some_and(crate::sys::out_of_fds) {
                        self.core.hit_fd_limit(self.conns.len());
                    }
                    self.accepts_starved = true;
                    break;
                }
                // The connection died in the queue, or the like: try the next one.
                Err(_) => {}
            }
        }
        self.accepted_since_step_back += accepted;
        if self.accepted_since_step_back >= STEP_BACK_EVERY && self.listening {
            self.accepted_since_step_back = 0;
            self.step_back()?;
        }
        self.watch_listener()
    }

    /// On the tick, a full worker with idle connections and a queue on its
    /// listener closes a small batch of the longest idle
    /// ([`Core::reclaims_due`]); the listener is watched again after.
    fn reclaim_for_queue(&mut self) {
        for _ in 0..self.core.reclaims_due(self.conns.vacant()) {
            if !self.reclaim_oldest() {
                break;
            }
        }
    }

    /// Moves this worker's watch on the shared listener to the back of the
    /// listener's wait queue. With `EPOLLEXCLUSIVE` the kernel wakes the
    /// first watch in that queue whose worker is waiting: left in place, the
    /// worker that registered first is woken for every new connection that
    /// finds it idle, and takes nearly all of them (measured
    /// 87-94 % at 1,000 keep-alive connections). Having taken
    /// [`STEP_BACK_EVERY`], it steps back, and the next connection wakes
    /// another worker.
    fn step_back(&mut self) -> io::Result<()> {
        let Some(listener) = &self.core.sources.listener else { return Ok(()) };
        // EPOLLEXCLUSIVE cannot be modified, only deleted and added again.
        self.epoll.delete(listener.as_fd())?;
        if self.epoll.add(listener.as_fd(), epoll::IN | epoll::EXCLUSIVE, token::encode(Op::Accept, 0, 0)).is_err() {
            self.listener_unwatched();
        }
        Ok(())
    }

    fn on_channel(&mut self) -> io::Result<()> {
        loop {
            let Some(channel) = self.core.sources.channel.as_ref() else { return Ok(()) };
            let len = match recv_nonblocking(channel.as_fd(), &mut self.core.inbox) {
                Ok(Some(len)) => Some(len),
                Ok(None) => return Ok(()),
                Err(_) => None,
            };
            // A message of no bytes with fds is no end: its fds are taken (and closed).
            let Some(len) = len.filter(|&len| !self.core.inbox.is_end_of_stream(len)) else {
                // The master is gone or done with us: finish up and exit.
                self.core.channel_open = false;
                if let Some(channel) = self.core.sources.channel.take() {
                    let _ = self.epoll.delete(channel.as_fd());
                }
                return self.start_drain();
            };
            if !handed::take_message(self, len)? {
                return Ok(());
            }
        }
    }

    /// Takes a connection into the slab and starts watching it, closing the
    /// longest-idle connection first when every slot is taken; false (and
    /// `fd` closed) when every slot is taken by a busy one, or when it cannot be watched
    /// (the kernel out of memory for the watch, the user's epoll watch
    /// limit): declined as a full worker's would be, so the master routes a
    /// handed one elsewhere, while this worker's other connections go on.
    fn adopt(&mut self, fd: OwnedFd, origin: Origin) -> io::Result<bool> {
        if self.conns.vacant() == 0 {
            // Full: the longest-idle keep-alive connection makes room, if any.
            self.reclaim_oldest();
        }
        let Some((slot, generation)) = self.conns.insert() else { return Ok(false) };
        let events = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::EDGE;
        let watched = socket::set_nonblocking(fd.as_fd())
            .and_then(|()| self.epoll.add(fd.as_fd(), events, token::encode(Op::Recv, slot, generation)));
        if watched.is_err() {
            self.conns.remove(slot);
            return Ok(false);
        }
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            // Readable until a read says otherwise: input may have come before the watch.
            *entry = Slot { fd: Some(fd), readable: true, origin, ..Slot::default() };
            let socket = entry.fd.as_ref().map(|fd| fd.as_fd());
            self.core.open_connection(&mut entry.conn, slot, origin, socket);
        }
        match origin {
            // Served once the master knows it is ours: `handed::take_message`.
            Origin::Handed => self.core.handed_now.push((slot, generation)),
            Origin::Accepted => self.drive(slot, generation)?,
        }
        Ok(true)
    }

    // --- time and draining ---------------------------------------------------------------------

    fn on_tick(&mut self) -> io::Result<()> {
        self.ticker.acknowledge();
        self.core.responses.refresh(SystemTime::now());
        let now = self.core.now;
        let due = self.core.deadlines_due();
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.conn.deadline() > now || !due {
                continue;
            }
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.handle_timeout(&mut ctx);
            if entry.conn.take_reader_look() {
                // Answers owed, input come meanwhile: does its client read?
                let unacknowledged = entry.fd.as_ref().and_then(|fd| socket::unacknowledged(fd.as_fd()).ok());
                entry.conn.handle_unacknowledged(unacknowledged, &ctx);
            }
            // A body's 408 is a request answered, as a 400 is.
            self.core.work_for(entry.conn.take_parsed());
            self.drive(slot, generation)?;
        }
        self.core.recheck_fd_limit();
        self.accepts_starved = false;
        self.reclaim_for_queue();
        self.watch_listener()?;
        // Takes what waits in the listen queue once a tick: a wake-up meant for
        // the waiters on a shared listener can go to one that is going away.
        if self.listening {
            self.on_listener()?;
        }
        Ok(())
    }

    fn start_drain(&mut self) -> io::Result<()> {
        if !self.core.start_drain() {
            return Ok(());
        }
        // The shutdown fd stays readable: stop watching it.
        if let Some(shutdown) = &self.core.sources.shutdown {
            let _ = self.epoll.delete(shutdown.as_fd());
        }
        self.watch_listener()?;
        if self.core.sources.own_listener {
            // Nobody else accepts there: take what is queued, then let it go.
            if let Some(listener) = self.core.sources.listener.take() {
                while self.conns.vacant() > 0 {
                    let Some(fd) = next_queued(&listener) else { break };
                    self.adopt(fd, Origin::Accepted)?;
                }
            }
        }
        self.core.publish_drain();
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            let (_, ctx) = self.core.parts(slot);
            entry.conn.handle_drain(&ctx);
        }
        Ok(())
    }
}

impl<'a> Driver<'a> for EpollWorker<'a> {
    fn core(&mut self) -> &mut Core<'a> {
        &mut self.core
    }

    fn live(&self) -> usize {
        self.conns.len()
    }

    fn adopt_handed(&mut self, fd: OwnedFd) -> io::Result<bool> {
        self.adopt(fd, Origin::Handed)
    }

    fn reclaim_oldest(&mut self) -> io::Result<bool> {
        Ok(EpollWorker::reclaim_oldest(self))
    }

    fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        EpollWorker::drive(self, slot, generation)
    }

    fn start_drain(&mut self) -> io::Result<()> {
        EpollWorker::start_drain(self)
    }
}
