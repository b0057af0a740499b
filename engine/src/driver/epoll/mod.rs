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
//! This file: the worker's state, the loop and the events' dispatch;
//! `setup.rs`: the epoll set and the worker built at start; `adopt.rs`: a
//! connection taken into a slot; `accepts.rs`: the listener watched and
//! its accepts; `channel.rs`: the master's channel; `tick.rs`: deadlines
//! judged on the tick; `drain.rs`: the drain begun; `connection.rs`:
//! reading and sending on one connection; `read_queue.rs`: connections
//! whose turn of reads ended with input left.

mod accepts;
mod adopt;
mod channel;
mod connection;
mod drain;
mod read_queue;
mod setup;
mod tick;

use std::io;
use std::os::fd::OwnedFd;

use super::core::Core;
use super::handed::Driver;
use super::Origin;
use crate::conn::Connection;
use crate::slab::Slab;
use crate::sys::epoll::{Epoll, Event};
use crate::sys::timerfd::Ticker;
use crate::token::{self, Op};
use read_queue::ReadQueue;

/// Reads one connection gets per turn before the others have theirs.
const READS_PER_TURN: usize = 16;

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

impl EpollWorker<'_> {
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
}
