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

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::protocol::MAX_LINE;
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

/// A command line without its line end (`\n` or `\r\n`).
fn command_line(line: &[u8]) -> Vec<u8> {
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

/// Every control client of the master.
#[derive(Debug)]
pub struct Clients {
    entries: Vec<Option<Client>>,
    epochs: Vec<u32>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    /// No clients yet.
    pub fn new() -> Clients {
        Clients { entries: (0..ENTRIES).map(|_| None).collect(), epochs: vec![0; ENTRIES] }
    }

    /// Clients being served (not closing).
    pub fn active(&self) -> usize {
        self.entries.iter().flatten().filter(|c| !c.closing).count()
    }

    /// True while some client still has reply bytes to receive.
    pub fn has_pending_output(&self) -> bool {
        self.entries.iter().flatten().any(Client::has_output)
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
        let Some(index) = self.entries.iter().position(Option::is_none) else { return adopted };
        self.epochs[index] = self.epochs[index].wrapping_add(1);
        self.entries[index] = Some(Client {
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
        adopted.id = Some(ClientId { index: index as u32, epoch: self.epochs[index] });
        adopted
    }

    fn ids(&self) -> impl Iterator<Item = (ClientId, &Client)> {
        self.entries.iter().enumerate().filter_map(|(index, entry)| {
            let id = ClientId { index: index as u32, epoch: self.epochs[index] };
            entry.as_ref().map(|client| (id, client))
        })
    }

    fn client(&mut self, id: ClientId) -> Option<&mut Client> {
        let index = id.index as usize;
        if self.epochs.get(index) != Some(&id.epoch) {
            return None;
        }
        self.entries.get_mut(index)?.as_mut()
    }

    /// A receive completed with `result` (bytes, 0 at end of stream, or
    /// `-errno`): the complete command lines it finished, without line ends.
    /// At the end of the stream, a last line without its line end is one
    /// too (`printf status | socat - UNIX-CONNECT:PATH`).
    pub fn received(&mut self, id: ClientId, result: i32, now: Instant) -> Vec<Vec<u8>> {
        let Some(client) = self.client(id) else { return Vec::new() };
        client.receiving = false;
        if result < 0 || client.closing {
            client.closing = true;
            return Vec::new();
        }
        if client.discarding {
            if result == 0 {
                client.closing = true;
            }
            return Vec::new();
        }
        let before = client.len;
        client.len += result as usize;
        let mut lines = Vec::new();
        while let Some(end) = client.input[..client.len].iter().position(|&b| b == b'\n') {
            lines.push(command_line(&client.input[..end]));
            client.input.copy_within(end + 1..client.len, 0);
            client.len -= end + 1;
        }
        if result == 0 {
            client.closing = true;
            if client.len > 0 {
                lines.push(command_line(&client.input[..client.len]));
                client.len = 0;
            }
        }
        if !lines.is_empty() {
            client.active_at = now;
        }
        // The line now in the buffer began with this receive unless it was already under way.
        client.line_started = match client.len {
            0 => None,
            _ if before > 0 && lines.is_empty() => client.line_started,
            _ => Some(now),
        };
        if client.len == MAX_LINE {
            client.queued.extend_from_slice(b"error: line too long\n");
            client.output_since.get_or_insert(now);
            client.discarding = true;
            client.len = 0;
            // The rest must end within a line's time too.
            client.line_started = Some(now);
        }
        lines
    }

    /// Queues a reply line for a client (behind a reply it is owed, if any).
    pub fn reply(&mut self, id: ClientId, text: &str, now: Instant) {
        let Some(client) = self.client(id).filter(|c| !c.aborted) else { return };
        let out = client.owed.as_mut().unwrap_or(&mut client.queued);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        if client.owed.is_none() {
            client.output_since.get_or_insert(now);
        }
    }

    /// The reply to the command just received comes later: replies to the
    /// next commands wait behind it until [`Clients::release`].
    pub fn hold(&mut self, id: ClientId) {
        if let Some(client) = self.client(id).filter(|c| !c.aborted) {
            client.owed.get_or_insert_with(Vec::new);
        }
    }

    /// Whether a command line that comes now waits ([`Clients::defer`]):
    /// the client is owed a reply, which comes first, or has not taken
    /// [`MAX_BACKLOG`] bytes of replies.
    pub fn must_wait(&mut self, id: ClientId) -> bool {
        self.client(id).is_some_and(|c| !c.aborted && c.must_wait())
    }

    /// Keeps a command line that came while the client must wait, to run
    /// after ([`Clients::take_deferred`]).
    pub fn defer(&mut self, id: ClientId, line: Vec<u8>) {
        if let Some(client) = self.client(id).filter(|c| !c.aborted) {
            client.deferred.push(line);
        }
    }

    /// The command lines kept while the client had to wait, to run now in
    /// order (none while it still must).
    pub fn take_deferred(&mut self, id: ClientId) -> Vec<Vec<u8>> {
        match self.client(id).filter(|c| !c.aborted && !c.must_wait()) {
            Some(client) => std::mem::take(&mut client.deferred),
            None => Vec::new(),
        }
    }

    /// The reply a client was owed, and after it those held behind it. A
    /// client gone meanwhile gets nothing.
    pub fn release(&mut self, id: ClientId, text: &str, now: Instant) {
        let Some(client) = self.client(id).filter(|c| !c.aborted) else { return };
        let Some(held) = client.owed.take() else { return };
        client.queued.extend_from_slice(text.as_bytes());
        client.queued.push(b'\n');
        client.queued.extend_from_slice(&held);
        client.output_since.get_or_insert(now);
    }

    /// A send completed with `result` (bytes sent or `-errno`).
    pub fn sent(&mut self, id: ClientId, result: i32, now: Instant) {
        let Some(client) = self.client(id) else { return };
        client.in_flight = false;
        if result < 0 {
            client.closing = true;
            client.sending.clear();
            client.sent = 0;
            client.queued.clear();
            // Commands that waited for it to take its replies: it never will.
            client.deferred.clear();
            return;
        }
        client.sent += result as usize;
        if client.sent >= client.sending.len() {
            client.sending.clear();
            client.sent = 0;
        }
        client.output_since = Some(now);
        if !client.has_output() {
            client.output_since = None;
            client.active_at = now;
        }
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

    /// The send and receive to start next for a client. A client that is
    /// done (closing, nothing in flight, nothing left to send) is freed, its
    /// connection returned to be closed.
    pub fn next_ops(&mut self, id: ClientId) -> (Ops, Option<OwnedFd>) {
        let mut ops = Ops::default();
        let Some(client) = self.client(id) else { return (ops, None) };
        let fd = client.fd.as_raw_fd();
        if !client.in_flight {
            if client.sending.is_empty() && !client.queued.is_empty() {
                std::mem::swap(&mut client.sending, &mut client.queued);
            }
            if client.sent < client.sending.len() {
                let rest = &client.sending[client.sent..];
                client.in_flight = true;
                // SAFETY: `sending` is neither changed nor freed while `in_flight`,
                // that is until `sent` (a client is freed only with nothing in flight).
                ops.send = Some(unsafe { Lent::send(fd, rest.as_ptr(), rest.len()) });
            }
        }
        // Nothing more is read while commands wait for an owed reply.
        if !client.receiving && !client.closing && client.deferred.is_empty() {
            client.receiving = true;
            let room = &mut client.input[client.len..];
            // SAFETY: the boxed line buffer is not touched while `receiving`,
            // that is until `received` (a client is freed only with nothing in flight).
            ops.recv = Some(unsafe { Lent::recv(fd, room.as_mut_ptr(), room.len()) });
        }
        // A client that ended its input still reads: it gets a reply it is owed.
        let waiting = client.owed.is_some() || !client.deferred.is_empty();
        if client.closing && !client.receiving && !client.has_output() && !waiting {
            let done = self.entries[id.index as usize].take();
            return (ops, done.map(|c| c.fd));
        }
        (ops, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"))
    }

    /// Adopts a client and starts its receive, as the master does.
    fn adopt(clients: &mut Clients, now: Instant) -> ClientId {
        let id = clients.adopt(connection(), now).id.expect("room");
        assert!(clients.next_ops(id).0.recv.is_some());
        id
    }

    /// Delivers `bytes` as the kernel would into the receive armed for `id`.
    fn deliver(clients: &mut Clients, id: ClientId, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        let client = clients.client(id).expect("live client");
        client.input[client.len..client.len + bytes.len()].copy_from_slice(bytes);
        let lines = clients.received(id, bytes.len() as i32, now);
        clients.next_ops(id);
        lines
    }

    #[test]
    fn lines_are_split_and_partial_lines_wait() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        assert_eq!(deliver(&mut clients, id, b"status\r\nsca", t), [b"status".to_vec()]);
        assert_eq!(deliver(&mut clients, id, b"le 2\n", t), [b"scale 2".to_vec()]);
    }

    #[test]
    fn a_partial_line_has_line_timeout_to_finish() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        deliver(&mut clients, id, b"sta", t + Duration::from_secs(1));
        // More bytes of the same line do not buy more time.
        deliver(&mut clients, id, b"t", t + Duration::from_secs(5));
        assert!(clients.expire(t + Duration::from_millis(5_900)).is_empty());
        let expired = clients.expire(t + Duration::from_secs(6));
        assert_eq!(expired, [(id, Cancel { recv: true, send: false })]);
        // Freed once the cancelled receive comes back.
        assert_eq!(clients.received(id, -libc::ECANCELED, t + Duration::from_secs(6)), Vec::<Vec<u8>>::new());
        assert!(clients.next_ops(id).1.is_some(), "the connection is handed back to be closed");
        assert_eq!(clients.active(), 0);
    }

    #[test]
    fn an_idle_client_is_closed_after_idle_timeout_and_commands_renew_it() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        let later = t + Duration::from_secs(50);
        deliver(&mut clients, id, b"status\n", later);
        assert!(clients.expire(t + IDLE_TIMEOUT).is_empty(), "a whole line renews the idle time");
        assert_eq!(clients.expire(later + IDLE_TIMEOUT).len(), 1);
    }

    #[test]
    fn a_reply_nobody_reads_times_out() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        deliver(&mut clients, id, b"status\n", t);
        clients.reply(id, "ok", t);
        assert!(clients.next_ops(id).0.send.is_some());
        clients.sent(id, 1, t + Duration::from_secs(3));
        assert!(clients.next_ops(id).0.send.is_some(), "the rest of the reply");
        assert!(clients.expire(t + Duration::from_secs(7)).is_empty(), "progress renews it");
        assert_eq!(clients.expire(t + Duration::from_secs(8)), [(id, Cancel { recv: true, send: true })]);
        clients.reply(id, "more", t + Duration::from_secs(8));
        clients.sent(id, -libc::ECANCELED, t + Duration::from_secs(8));
        clients.received(id, -libc::ECANCELED, t + Duration::from_secs(8));
        assert!(!clients.has_pending_output(), "nothing more goes to a closed client");
        assert!(clients.next_ops(id).1.is_some());
    }

    #[test]
    fn a_full_house_evicts_the_client_idle_the_longest() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let ids: Vec<ClientId> =
            (0..MAX_CLIENTS).map(|i| adopt(&mut clients, t + Duration::from_millis(i as u64))).collect();
        // The first one is busy (it just sent a command); the second has been idle the longest.
        deliver(&mut clients, ids[0], b"status\n", t + Duration::from_secs(1));
        let newcomer = clients.adopt(connection(), t + Duration::from_secs(2));
        assert_eq!(newcomer.evicted, Some((ids[1], Cancel { recv: true, send: false })));
        let newcomer = newcomer.id.expect("the newcomer gets in");
        assert_eq!(clients.active(), MAX_CLIENTS);
        assert!(clients.next_ops(newcomer).0.recv.is_some());
        // The evicted client's buffer stays until its receive comes back.
        assert!(clients.next_ops(ids[1]).1.is_none());
        clients.received(ids[1], -libc::ECANCELED, t);
        assert!(clients.next_ops(ids[1]).1.is_some());
    }

    #[test]
    fn a_client_owed_a_reply_is_not_evicted() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let ids: Vec<ClientId> =
            (0..MAX_CLIENTS).map(|i| adopt(&mut clients, t + Duration::from_millis(i as u64))).collect();
        // The oldest asked for an upgrade: its reply comes with the outcome.
        deliver(&mut clients, ids[0], b"upgrade\n", t);
        clients.hold(ids[0]);
        let newcomer = clients.adopt(connection(), t + Duration::from_secs(2));
        assert_eq!(newcomer.evicted.map(|(id, _)| id), Some(ids[1]), "the oldest idle one makes room");
        clients.release(ids[0], "ok upgraded", t + Duration::from_secs(3));
        assert!(clients.next_ops(ids[0]).0.send.is_some(), "the outcome goes out");
    }

    #[test]
    fn an_endless_line_gets_an_error_then_the_close() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        clients.client(id).expect("live").input.fill(b'x');
        assert!(clients.received(id, MAX_LINE as i32, t).is_empty());
        let (ops, closed) = clients.next_ops(id);
        assert!(closed.is_none());
        assert!(ops.send.is_some(), "the error goes out first");
        assert!(ops.recv.is_some(), "what else comes is read, not left to reset the connection");
        let len = b"error: line too long\n".len();
        clients.sent(id, len as i32, t);
        // More of the line, even a line end: dropped, no command.
        deliver(&mut clients, id, b"xxxx\nstatus\n", t);
        assert!(clients.next_ops(id).1.is_none(), "open until the client's end");
        assert!(clients.received(id, 0, t).is_empty());
        assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
    }

    #[test]
    fn an_endless_line_that_does_not_end_is_closed_after_the_line_timeout() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        clients.client(id).expect("live").input.fill(b'x');
        clients.received(id, MAX_LINE as i32, t);
        clients.next_ops(id);
        clients.sent(id, b"error: line too long\n".len() as i32, t);
        deliver(&mut clients, id, b"xxxx", t + LINE_TIMEOUT / 2);
        assert!(clients.expire(t + LINE_TIMEOUT / 2).is_empty());
        let expired = clients.expire(t + LINE_TIMEOUT);
        assert_eq!(expired.len(), 1, "the rest had a line's time to end");
    }

    #[test]
    fn a_reply_owed_comes_first_and_the_client_waits_without_idling() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        deliver(&mut clients, id, b"upgrade\nstatus\n", t);
        clients.hold(id);
        clients.reply(id, "{status}", t);
        assert!(clients.next_ops(id).0.send.is_none(), "nothing goes out before the owed reply");
        assert!(clients.expire(t + IDLE_TIMEOUT * 2).is_empty(), "waiting is not idling");
        clients.release(id, "ok upgraded", t + IDLE_TIMEOUT * 2);
        assert!(clients.next_ops(id).0.send.is_some(), "the replies go out");
        let expected = b"ok upgraded\n{status}\n";
        assert_eq!(clients.client(id).expect("live").sending, expected);
        clients.sent(id, expected.len() as i32, t + IDLE_TIMEOUT * 2);
        assert!(!clients.has_pending_output());
        // Released once: a second release says nothing more.
        clients.release(id, "again", t);
        assert!(clients.next_ops(id).0.send.is_none());
    }

    #[test]
    fn commands_after_an_owed_reply_wait_for_it_and_nothing_more_is_read() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        let bytes = b"upgrade\nreload\nstatus\n";
        let client = clients.client(id).expect("live client");
        client.input[..bytes.len()].copy_from_slice(bytes);
        // As the master runs them: the first holds, the rest wait behind it.
        let mut lines = clients.received(id, bytes.len() as i32, t).into_iter();
        assert_eq!(lines.next().as_deref(), Some(&b"upgrade"[..]));
        clients.hold(id);
        for line in lines {
            assert!(clients.must_wait(id));
            clients.defer(id, line);
        }
        assert!(clients.take_deferred(id).is_empty(), "none runs before the outcome");
        let (ops, done) = clients.next_ops(id);
        assert!(ops.recv.is_none() && done.is_none(), "nothing more is read while commands wait");
        clients.release(id, "ok upgraded", t);
        assert!(!clients.must_wait(id));
        assert_eq!(clients.take_deferred(id), [b"reload".to_vec(), b"status".to_vec()]);
        assert!(clients.next_ops(id).0.recv.is_some(), "read again once they run");
    }

    #[test]
    fn commands_wait_while_the_client_has_not_taken_a_backlog_of_replies() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        let lines = deliver(&mut clients, id, b"status\nstatus\nstatus\n", t);
        let reply = "x".repeat(MAX_BACKLOG / 2);
        let mut deferred = 0;
        for line in lines {
            if clients.must_wait(id) {
                clients.defer(id, line);
                deferred += 1;
            } else {
                clients.reply(id, &reply, t);
            }
        }
        assert_eq!(deferred, 1, "the third waits for the client to take the first two");
        let (ops, _) = clients.next_ops(id);
        assert!(ops.send.is_some() && ops.recv.is_none(), "and nothing more is read meanwhile");
        assert!(clients.take_deferred(id).is_empty());
        clients.sent(id, 2, t);
        assert!(clients.take_deferred(id).is_empty(), "still a backlog");
        clients.next_ops(id);
        clients.sent(id, reply.len() as i32, t);
        assert_eq!(clients.take_deferred(id), [b"status".to_vec()], "runs once it is taken");
    }

    #[test]
    fn a_last_line_without_its_end_is_a_command_at_the_end_of_input() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        assert!(deliver(&mut clients, id, b"status\r", t).is_empty(), "a partial line waits");
        assert_eq!(clients.received(id, 0, t), [b"status".to_vec()], "the end of input finishes it");
        clients.reply(id, "{status}", t);
        let (ops, closed) = clients.next_ops(id);
        assert!(ops.send.is_some() && ops.recv.is_none() && closed.is_none(), "the reply goes out, no more input");
        clients.sent(id, b"{status}\n".len() as i32, t);
        assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
        // Nothing pending at the end: no command.
        let other = adopt(&mut clients, t);
        assert!(clients.received(other, 0, t).is_empty());
    }

    #[test]
    fn a_client_that_ended_its_input_still_gets_a_reply_it_is_owed() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        deliver(&mut clients, id, b"upgrade\n", t);
        clients.hold(id);
        assert!(clients.received(id, 0, t).is_empty());
        assert!(clients.next_ops(id).1.is_none(), "kept while its reply is owed");
        clients.release(id, "error: upgrade failed", t);
        assert!(clients.next_ops(id).0.send.is_some(), "the reply goes out");
        clients.sent(id, b"error: upgrade failed\n".len() as i32, t);
        assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
    }

    #[test]
    fn a_stale_id_names_nobody() {
        let mut clients = Clients::new();
        let t = Instant::now();
        let id = adopt(&mut clients, t);
        clients.close(id);
        clients.received(id, 0, t);
        assert!(clients.next_ops(id).1.is_some());
        let next = adopt(&mut clients, t);
        assert_eq!(next.index, id.index, "the entry is reused");
        assert!(clients.received(id, 5, t).is_empty());
        assert_eq!(clients.close(id), Cancel::default());
        assert_eq!(clients.active(), 1);
    }
}
