//! The metrics endpoint's clients, free of I/O: each one's request, its
//! answer and its deadlines, and which client makes room when all slots are
//! taken. The master's loop makes the receives and sends with the buffers
//! lent here and reports their results back, as for the control socket.
//!
//! The endpoint is bounded: one request per connection, whose head fits in
//! [`MAX_REQUEST`] bytes and arrives within [`READ_TIMEOUT`] of the
//! connection; the answer must be taken within [`WRITE_TIMEOUT`] (each bit
//! of progress renews it); then the connection closes. At most
//! [`MAX_SCRAPERS`] clients are served at once: one more evicts the oldest,
//! so a few silent connections cannot lock Prometheus out.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::exposition::CONTENT_TYPE;
use super::request::{judge, Refusal};
use crate::control::clients::{Cancel, Ops};
use crate::epoch_slots::EpochSlots;
use crate::reactor::Lent;

/// Clients served at once; one more evicts the oldest.
pub const MAX_SCRAPERS: usize = 16;
/// Longest request head read; longer ones get `431`.
pub const MAX_REQUEST: usize = 4096;
/// Time from the connection to the end of its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the client to take the answer, renewed by each bit of progress.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries: the active clients, plus evicted or timed-out ones whose
/// receive or send the kernel has not yet given back.
const ENTRIES: usize = 2 * MAX_SCRAPERS;

/// Names one client connection; a stale id (its entry reused) names nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeId {
    /// Entry index.
    pub index: u32,
    /// Changes each time the entry takes a new client.
    pub epoch: u32,
}

/// What a client asked for, once its request head is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// The page (`GET`, or `HEAD`: `head` is true): answer with [`Scrapes::answer`].
    Page {
        /// Headers only.
        head: bool,
    },
    /// Something else: the client has its error answer already.
    Refused,
}

#[derive(Debug)]
struct Scrape {
    fd: OwnedFd,
    input: Box<[u8; MAX_REQUEST]>,
    len: usize,
    /// The answer; a send in flight reads it, so it is not touched until then.
    output: Vec<u8>,
    sent: usize,
    receiving: bool,
    sending: bool,
    /// The request is in (or the client gave up): no more input.
    read_done: bool,
    /// Closed by the master (timed out, evicted): nothing more goes out.
    aborted: bool,
    connected_at: Instant,
    /// When its answer last started or made progress.
    output_since: Option<Instant>,
}

impl Scrape {
    fn deadline(&self) -> Instant {
        match self.output_since {
            Some(at) => at + WRITE_TIMEOUT,
            None => self.connected_at + READ_TIMEOUT,
        }
    }

    fn has_output(&self) -> bool {
        self.sending || self.sent < self.output.len()
    }

    fn abort(&mut self) -> Cancel {
        self.aborted = true;
        self.read_done = true;
        if !self.sending {
            self.output.clear();
            self.sent = 0;
        }
        Cancel { recv: self.receiving, send: self.sending }
    }
}

/// A new connection's fate.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Its id; `None` when there was no room at all (it is closed).
    pub id: Option<ScrapeId>,
    /// The client evicted to make room, and its ops to cancel.
    pub evicted: Option<(ScrapeId, Cancel)>,
}

/// Every client of the metrics endpoint.
#[derive(Debug)]
pub struct Scrapes {
    slots: EpochSlots<Scrape>,
}

impl Default for Scrapes {
    fn default() -> Self {
        Self::new()
    }
}

impl Scrapes {
    /// No clients yet.
    pub fn new() -> Scrapes {
        Scrapes { slots: EpochSlots::new(ENTRIES) }
    }

    /// Clients being served (not closed by the master).
    pub fn active(&self) -> usize {
        self.slots.occupants().filter(|s| !s.aborted).count()
    }

    fn ids(&self) -> impl Iterator<Item = (ScrapeId, &Scrape)> {
        self.slots.iter().map(|(index, epoch, scrape)| (ScrapeId { index, epoch }, scrape))
    }

    fn scrape(&mut self, id: ScrapeId) -> Option<&mut Scrape> {
        self.slots.get_mut(id.index, id.epoch)
    }

    /// Takes a new connection, evicting the oldest client if every slot is
    /// taken. Call [`Scrapes::next_ops`] for its first receive.
    pub fn adopt(&mut self, fd: OwnedFd, now: Instant) -> Adopted {
        let mut adopted = Adopted::default();
        if self.active() >= MAX_SCRAPERS {
            let oldest = self.ids().filter(|(_, s)| !s.aborted).min_by_key(|(_, s)| s.connected_at).map(|(id, _)| id);
            if let Some(id) = oldest {
                adopted.evicted = Some((id, self.close(id)));
            }
        }
        let entry = self.slots.insert(|| Scrape {
            fd,
            input: Box::new([0; MAX_REQUEST]),
            len: 0,
            output: Vec::new(),
            sent: 0,
            receiving: false,
            sending: false,
            read_done: false,
            aborted: false,
            connected_at: now,
            output_since: None,
        });
        adopted.id = entry.map(|(index, epoch)| ScrapeId { index, epoch });
        adopted
    }

    /// A receive completed with `result` (bytes, 0 at end of stream, or
    /// `-errno`): what the client asked for, once its request head is in.
    pub fn received(&mut self, id: ScrapeId, result: i32, now: Instant) -> Option<Asked> {
        let scrape = self.scrape(id)?;
        scrape.receiving = false;
        if result <= 0 || scrape.read_done {
            scrape.read_done = true;
            return None;
        }
        scrape.len += result as usize;
        let input = &scrape.input[..scrape.len];
        let end =
            input.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| input.windows(2).position(|w| w == b"\n\n"));
        let asked = match end {
            Some(end) => judge(&input[..end]),
            None if scrape.len == MAX_REQUEST => Err(Refusal::TooLarge),
            None => return None,
        };
        scrape.read_done = true;
        match asked {
            Ok(head) => Some(Asked::Page { head }),
            Err(refusal) => {
                scrape.output = refusal.answer();
                scrape.output_since = Some(now);
                Some(Asked::Refused)
            }
        }
    }

    /// Answers a client that asked for the page with `page` (its body).
    pub fn answer(&mut self, id: ScrapeId, page: &str, head: bool, now: Instant) {
        let Some(scrape) = self.scrape(id).filter(|s| !s.aborted) else { return };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\n\r\n",
            page.len()
        )
        .into_bytes();
        if !head {
            out.extend_from_slice(page.as_bytes());
        }
        scrape.output = out;
        scrape.output_since = Some(now);
    }

    /// A send completed with `result` (bytes sent or `-errno`).
    pub fn sent(&mut self, id: ScrapeId, result: i32, now: Instant) {
        let Some(scrape) = self.scrape(id) else { return };
        scrape.sending = false;
        if result < 0 {
            scrape.aborted = true;
            scrape.output.clear();
            scrape.sent = 0;
            return;
        }
        scrape.sent += result as usize;
        scrape.output_since = Some(now);
    }

    /// Closes a client: no more input or output. Its ops in flight, to
    /// cancel; it is freed once their results are back.
    pub fn close(&mut self, id: ScrapeId) -> Cancel {
        self.scrape(id).map(Scrape::abort).unwrap_or_default()
    }

    /// Closes every client past its deadline; their ids and ops to cancel.
    pub fn expire(&mut self, now: Instant) -> Vec<(ScrapeId, Cancel)> {
        let late: Vec<ScrapeId> =
            self.ids().filter(|(_, s)| !s.aborted && s.deadline() <= now).map(|(id, _)| id).collect();
        late.into_iter().map(|id| (id, self.close(id))).collect()
    }

    /// The send and receive to start next for a client. A client that is
    /// done (answered, or closed, with nothing in flight) is freed, its
    /// connection returned to be closed.
    pub fn next_ops(&mut self, id: ScrapeId) -> (Ops, Option<OwnedFd>) {
        let mut ops = Ops::default();
        let Some(scrape) = self.scrape(id) else { return (ops, None) };
        let fd = scrape.fd.as_raw_fd();
        if !scrape.sending && !scrape.aborted && scrape.sent < scrape.output.len() {
            let rest = &scrape.output[scrape.sent..];
            scrape.sending = true;
            // SAFETY: `output` is neither changed nor freed while `sending`, that
            // is until `sent` (an entry is freed only with nothing in flight).
            ops.send = Some(unsafe { Lent::send(fd, rest.as_ptr(), rest.len()) });
        }
        if !scrape.receiving && !scrape.read_done {
            scrape.receiving = true;
            let room = &mut scrape.input[scrape.len..];
            // SAFETY: the boxed buffer is not touched while `receiving`, that is
            // until `received` (an entry is freed only with nothing in flight).
            ops.recv = Some(unsafe { Lent::recv(fd, room.as_mut_ptr(), room.len()) });
        }
        let answered = scrape.read_done && !scrape.output.is_empty() && !scrape.has_output();
        let given_up =
            scrape.aborted || (scrape.read_done && scrape.output.is_empty() && scrape.output_since.is_none());
        if (answered || given_up) && !scrape.receiving && !scrape.sending {
            let done = self.slots.take(id.index);
            return (ops, done.map(|s| s.fd));
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

    fn adopt(scrapes: &mut Scrapes, now: Instant) -> ScrapeId {
        let id = scrapes.adopt(connection(), now).id.expect("room");
        assert!(scrapes.next_ops(id).0.recv.is_some());
        id
    }

    /// Delivers `bytes` as the kernel would into the receive armed for `id`.
    fn deliver(scrapes: &mut Scrapes, id: ScrapeId, bytes: &[u8], now: Instant) -> Option<Asked> {
        let scrape = scrapes.scrape(id).expect("live");
        scrape.input[scrape.len..scrape.len + bytes.len()].copy_from_slice(bytes);
        scrapes.received(id, bytes.len() as i32, now)
    }

    fn output(scrapes: &mut Scrapes, id: ScrapeId) -> String {
        String::from_utf8(scrapes.scrape(id).expect("live").output.clone()).expect("text")
    }

    #[test]
    fn a_request_in_pieces_is_answered_once_whole_then_closed() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let id = adopt(&mut scrapes, t);
        assert_eq!(deliver(&mut scrapes, id, b"GET /metrics HTTP/1.1\r\n", t), None);
        assert!(scrapes.next_ops(id).0.recv.is_some(), "reads on");
        assert_eq!(deliver(&mut scrapes, id, b"Host: a\r\n\r\n", t), Some(Asked::Page { head: false }));
        scrapes.answer(id, "m 1\n", false, t);
        let (ops, done) = scrapes.next_ops(id);
        assert!(ops.send.is_some() && ops.recv.is_none() && done.is_none());
        let text = output(&mut scrapes, id);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nm 1\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n") && text.contains("Connection: close\r\n"), "{text}");
        scrapes.sent(id, 10, t);
        assert!(scrapes.next_ops(id).0.send.is_some(), "the rest");
        scrapes.sent(id, text.len() as i32 - 10, t);
        assert!(scrapes.next_ops(id).1.is_some(), "answered: closed");
        assert_eq!(scrapes.active(), 0);
    }

    #[test]
    fn errors_are_answered_without_the_page() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let id = adopt(&mut scrapes, t);
        assert_eq!(deliver(&mut scrapes, id, b"DELETE /metrics HTTP/1.1\r\n\r\n", t), Some(Asked::Refused));
        let text = output(&mut scrapes, id);
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && text.contains("Allow: GET, HEAD\r\n"));
        let id = adopt(&mut scrapes, t);
        let long = [b'x'; MAX_REQUEST];
        assert_eq!(deliver(&mut scrapes, id, &long, t), Some(Asked::Refused));
        assert!(output(&mut scrapes, id).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn a_silent_client_is_closed_after_the_read_timeout() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let id = adopt(&mut scrapes, t);
        assert_eq!(deliver(&mut scrapes, id, b"GET /met", t + Duration::from_secs(4)), None);
        scrapes.next_ops(id);
        assert!(scrapes.expire(t + READ_TIMEOUT - Duration::from_millis(1)).is_empty(), "bytes buy no time");
        assert_eq!(scrapes.expire(t + READ_TIMEOUT), [(id, Cancel { recv: true, send: false })]);
        assert_eq!(scrapes.received(id, -libc::ECANCELED, t + READ_TIMEOUT), None);
        assert!(scrapes.next_ops(id).1.is_some(), "freed once the receive is back");
    }

    #[test]
    fn an_answer_nobody_takes_times_out_and_progress_renews_it() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let id = adopt(&mut scrapes, t);
        deliver(&mut scrapes, id, b"GET /metrics HTTP/1.1\r\n\r\n", t);
        scrapes.answer(id, "m 1\n", false, t);
        assert!(scrapes.next_ops(id).0.send.is_some());
        scrapes.sent(id, 1, t + Duration::from_secs(4));
        assert!(scrapes.next_ops(id).0.send.is_some());
        assert!(scrapes.expire(t + Duration::from_secs(8)).is_empty(), "progress renews it");
        assert_eq!(scrapes.expire(t + Duration::from_secs(9)), [(id, Cancel { recv: false, send: true })]);
        scrapes.sent(id, -libc::ECANCELED, t);
        assert!(scrapes.next_ops(id).1.is_some());
    }

    #[test]
    fn a_full_house_evicts_the_oldest_client() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let ids: Vec<ScrapeId> =
            (0..MAX_SCRAPERS).map(|i| adopt(&mut scrapes, t + Duration::from_millis(i as u64))).collect();
        let newcomer = scrapes.adopt(connection(), t + Duration::from_secs(1));
        assert_eq!(newcomer.evicted, Some((ids[0], Cancel { recv: true, send: false })));
        assert!(newcomer.id.is_some());
        assert_eq!(scrapes.active(), MAX_SCRAPERS);
        assert!(scrapes.next_ops(ids[0]).1.is_none(), "its buffer stays until the receive is back");
        scrapes.received(ids[0], -libc::ECANCELED, t);
        assert!(scrapes.next_ops(ids[0]).1.is_some());
    }

    #[test]
    fn a_client_that_leaves_early_is_freed() {
        let mut scrapes = Scrapes::new();
        let t = Instant::now();
        let id = adopt(&mut scrapes, t);
        assert_eq!(scrapes.received(id, 0, t), None);
        assert!(scrapes.next_ops(id).1.is_some());
        assert!(scrapes.received(id, 5, t).is_none(), "a stale id names nobody");
    }
}
