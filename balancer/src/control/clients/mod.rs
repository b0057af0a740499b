//! The control socket's clients, free of I/O: each one's input line and
//! replies, its deadlines, and which client makes room when all slots are
//! taken. The master's loop makes the receives and sends with the buffers
//! lent here and reports their results back.
//!
//! Nobody can lock an operator out: a line must be complete within
//! [`LINE_TIMEOUT`] of its first byte, a reply must be taken within
//! [`LINE_TIMEOUT`] (each bit of progress renews it), a client with nothing
//! under way is closed after [`IDLE_TIMEOUT`], and when all [`MAX_CLIENTS`]
//! slots are taken a new client evicts the one idle the longest.
//!
//! A command whose outcome comes later (`upgrade`) holds its client: the
//! commands after it wait for that outcome and then run, in order, their
//! replies after its own, and the client is not idle meanwhile
//! ([`Clients::hold`], [`Clients::release`], [`Clients::defer`]). Nothing
//! more is read from it while commands wait, so they stay within a line
//! buffer's worth.
//!
//! So do the commands of a client that has not taken [`MAX_BACKLOG`] bytes
//! of replies: they run as it takes them. Else a client that writes
//! `status` lines and reads slowly (or not at all) made the master render
//! replies as fast as it could and keep them all (seen: 7 MB a second).

mod lines;
mod ops;
mod replies;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::protocol::MAX_LINE;
use crate::epoch_slots::EpochSlots;
use crate::reactor::Lent;

/// Control clients served at once; one more evicts the one idle the longest.
pub const MAX_CLIENTS: usize = 32;
/// Time to send a whole command line once it has begun, and to take a reply.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client may stay connected with nothing under way.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Reply bytes a client has not taken past which its next commands wait.
pub const MAX_BACKLOG: usize = 64 * 1024;
/// Entries for clients: the active ones, plus evicted or timed-out ones whose
/// receive or send the kernel has not yet given back.
const ENTRIES: usize = 2 * MAX_CLIENTS;

/// Names one client connection; a stale id (its slot reused) names nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientId {
    /// Entry index.
    pub index: u32,
    /// Changes each time the entry takes a new client.
    pub epoch: u32,
}

/// The I/O to start for a client, on buffers lent until its result is
/// reported back ([`Clients::sent`], [`Clients::received`]).
#[derive(Debug, Default)]
pub struct Ops {
    /// A send of reply bytes.
    pub send: Option<Lent>,
    /// A receive into the rest of the line buffer.
    pub recv: Option<Lent>,
}

/// The ops in flight to cancel for a client being closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cancel {
    /// Its receive is in flight.
    pub recv: bool,
    /// Its send is in flight.
    pub send: bool,
}

/// A new connection's fate.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Its id; `None` when there was no room at all (it is closed).
    pub id: Option<ClientId>,
    /// The client evicted to make room, and its ops to cancel.
    pub evicted: Option<(ClientId, Cancel)>,
}

#[derive(Debug)]
struct Client {
    fd: OwnedFd,
    input: Box<[u8; MAX_LINE]>,
    len: usize,
    /// Bytes a send in flight reads: never touched until it completes.
    sending: Vec<u8>,
    sent: usize,
    /// Replies waiting for the send in flight.
    queued: Vec<u8>,
    /// A reply is owed (its outcome comes later): the replies after it, held.
    owed: Option<Vec<u8>>,
    /// Command lines that came while a reply was owed: they run once it is
    /// given ([`Clients::take_deferred`]), on what the master is by then.
    deferred: Vec<Vec<u8>>,
    receiving: bool,
    in_flight: bool,
    /// No more input: close once the output is sent.
    closing: bool,
    /// Its line was too long: what else it sends is read and dropped until
    /// its end (or [`LINE_TIMEOUT`]), so that closing with input unread
    /// does not reset the connection and lose the error.
    discarding: bool,
    /// Closed by the master (timed out, evicted): nothing more goes out either.
    aborted: bool,
    /// When it last finished something: connected, sent a whole line, took a whole reply.
    active_at: Instant,
    /// When the line now in `input` began.
    line_started: Option<Instant>,
    /// When its reply output last started or made progress.
    output_since: Option<Instant>,
}

impl Client {
    fn has_output(&self) -> bool {
        self.in_flight || !self.queued.is_empty() || self.sent < self.sending.len()
    }

    /// Its next command waits: for a reply it is owed, or for it to take
    /// the replies it has not.
    fn must_wait(&self) -> bool {
        let backlog = self.queued.len() + self.sending.len().saturating_sub(self.sent);
        self.owed.is_some() || backlog >= MAX_BACKLOG
    }

    /// When it is closed if nothing happens; `None`: not while it waits for a
    /// reply it is owed (waiting is not idling), with nothing else under way.
    fn deadline(&self) -> Option<Instant> {
        let idle = self.owed.is_none().then_some(self.active_at + IDLE_TIMEOUT);
        let under_way = [self.line_started, self.output_since].into_iter().flatten().map(|at| at + LINE_TIMEOUT);
        idle.into_iter().chain(under_way).min()
    }

    /// Stops everything: no more input, no more output; the ops in flight to cancel.
    fn abort(&mut self) -> Cancel {
        self.closing = true;
        self.aborted = true;
        self.queued.clear();
        self.owed = None;
        self.deferred.clear();
        if !self.in_flight {
            self.sending.clear();
            self.sent = 0;
        }
        Cancel { recv: self.receiving, send: self.in_flight }
    }
}

/// Every control client of the master.
#[derive(Debug)]
pub struct Clients {
    slots: EpochSlots<Client>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    /// No clients yet.
    pub fn new() -> Clients {
        Clients { slots: EpochSlots::new(ENTRIES) }
    }

    /// Clients being served (not closing).
    pub fn active(&self) -> usize {
        self.slots.occupants().filter(|c| !c.closing).count()
    }

    /// True while some client still has reply bytes to receive.
    pub fn has_pending_output(&self) -> bool {
        self.slots.occupants().any(Client::has_output)
    }

    /// Takes a new connection, evicting the client idle the longest if every
    /// slot is taken. Call [`Clients::next_ops`] for its first receive.
    pub fn adopt(&mut self, fd: OwnedFd, now: Instant) -> Adopted {
        let mut adopted = Adopted::default();
        if self.active() >= MAX_CLIENTS {
            // One waiting for a reply it is owed (`upgrade`) is not idle:
            // evicted, it would lose the outcome of what it asked for.
            let oldest = (self.ids().filter(|&(_, c)| !c.closing && c.owed.is_none()))
                .min_by_key(|&(_, c)| c.active_at)
                .map(|(id, _)| id);
            if let Some(id) = oldest {
                adopted.evicted = Some((id, self.close(id)));
            }
        }
        // No room at all (evicted clients still waiting for the kernel): `fd` drops, closed.
        let entry = self.slots.insert(|| Client {
            fd,
            input: Box::new([0; MAX_LINE]),
            len: 0,
            sending: Vec::new(),
            sent: 0,
            queued: Vec::new(),
            owed: None,
            deferred: Vec::new(),
            receiving: false,
            in_flight: false,
            closing: false,
            discarding: false,
            aborted: false,
            active_at: now,
            line_started: None,
            output_since: None,
        });
        adopted.id = entry.map(|(index, epoch)| ClientId { index, epoch });
        adopted
    }

    fn ids(&self) -> impl Iterator<Item = (ClientId, &Client)> {
        self.slots.iter().map(|(index, epoch, client)| (ClientId { index, epoch }, client))
    }

    fn client(&mut self, id: ClientId) -> Option<&mut Client> {
        self.slots.get_mut(id.index, id.epoch)
    }

    /// Closes a client: no more input or output. Its ops in flight, to
    /// cancel; it is freed once their results are back.
    pub fn close(&mut self, id: ClientId) -> Cancel {
        self.client(id).map(Client::abort).unwrap_or_default()
    }

    /// Closes every client past its deadline; their ids and ops to cancel.
    pub fn expire(&mut self, now: Instant) -> Vec<(ClientId, Cancel)> {
        let late: Vec<ClientId> = self
            .ids()
            .filter(|(_, c)| !c.closing && c.deadline().is_some_and(|at| at <= now))
            .map(|(id, _)| id)
            .collect();
        late.into_iter().map(|id| (id, self.close(id))).collect()
    }
}

#[cfg(test)]
mod tests;
