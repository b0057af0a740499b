//! One HTTP/1.1 connection as a state machine with no I/O in it.
//!
//! The driver (io_uring or epoll) owns the socket. It reports what happened
//! through the `handle_*` methods — bytes received, a send completed, the
//! client's FIN, a deadline passed, a drain began — and asks what to do next
//! through [`Connection::poll_send`], [`Connection::wants_read`],
//! [`Connection::take_half_close`] and [`Connection::is_closed`]. All HTTP
//! behaviour lives here once: keep-alive, pipelined requests answered in one
//! send, back-pressure, lingering after an error, the last reply of a drain
//! carrying `Connection: close`, and the header, body, idle and linger timers.
//!
//! This file holds the [`Connection`] and what a worker lends it
//! ([`Context`]); its methods are in one file per concern:
//!
//! - `phase.rs`: the [`Phase`], and the driver's questions (closed, idle, reclaimable, wants to read)
//! - `input.rs`: bytes received, the carry buffer
//! - `requests.rs`: requests parsed from input and answered (a page queued, or the handler run)
//! - `health.rs`: which requests are probes of `--health-path`
//! - `send.rs`: the next send, and its completion or failure
//! - `timeouts.rs`: the [`Timer`]s and [`Timeouts`], deadlines set and passed
//! - `reader_watch.rs`: whether a client that sends while answers are owed reads them
//! - `drain.rs`: idle connections hurried out, the last answer made to close
//! - `close.rs`: the client's close, a read error, our FIN and the linger, the slot freed
//!
//! and the pieces it is built of: `replies.rs` (the run-length reply queue),
//! `outgoing.rs` (the slices a send points at), `out_buf.rs` (the output
//! buffer lent to a call), `assembly.rs` (a request gathered for a handler).

mod assembly;
mod close;
mod drain;
mod health;
mod input;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod lent;
mod out_buf;
mod outgoing;
mod phase;
mod reader_watch;
mod replies;
mod requests;
mod send;
#[cfg(test)]
mod tests;
mod timeouts;

pub use outgoing::Outgoing;
pub use replies::ReplyQueue;

use self::assembly::Assembly;
pub use self::drain::DRAIN_RECENT_MS;
pub use self::out_buf::OutBuf;
use self::phase::Phase;
use self::reader_watch::ReaderWatch;
pub use self::timeouts::Timeouts;
use self::timeouts::Timer;
use crate::answer::Answering;
use crate::http::{Limits, RequestParser};
use crate::response::Responses;

/// What the handlers need from the worker around them.
#[derive(Debug)]
pub struct Context<'a> {
    /// Coarse monotonic milliseconds.
    pub now: u64,
    /// The limits requests keep to.
    pub limits: Limits,
    /// The timeouts.
    pub timeouts: Timeouts,
    /// The preformatted replies sends point into.
    pub responses: &'a mut Responses,
    /// The worker is draining: last replies carry `Connection: close`.
    pub draining: bool,
    /// How requests are answered: preformatted pages or the handler.
    pub answering: Answering<'a>,
    /// This connection's output buffer (a handler's framed responses).
    pub out: OutBuf<'a>,
    /// `--health-path`: a `GET` of it is answered here, ahead of any handler.
    pub health_path: Option<&'a [u8]>,
    /// The worker serves and its master has not marked it a lame duck: the
    /// health path answers `200 ready` (else `503 draining`).
    pub healthy: bool,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    phase: Phase,
    parser: RequestParser,
    replies: ReplyQueue,
    outgoing: Outgoing,
    /// A send was handed to the driver and has not completed.
    sending: bool,
    /// The client's FIN arrived: nothing more will be read.
    read_closed: bool,
    /// Our FIN is due: the driver takes it with [`Connection::take_half_close`].
    half_close_due: bool,
    /// Bytes of an incomplete header block (or held input) in the carry buffer.
    carry_len: usize,
    timer: Timer,
    deadline: u64,
    /// When the idle timer last started: the last answer's send, or input.
    idle_since: u64,
    body_started: u64,
    body_bytes: u64,
    /// When it began to linger (our FIN): the linger ends by
    /// [`LINGER_MOST_MS`](close::LINGER_MOST_MS) after it, however long its client sends.
    linger_started: u64,
    /// Requests parsed since the driver last asked ([`Connection::take_parsed`]).
    parsed: u32,
    /// A request gathered for the handler across reads.
    assembly: Assembly,
    /// Bytes of the output buffer handed to sends, and bytes framed in it.
    out_sent: usize,
    out_len: usize,
    /// The most bytes of the carry and output buffers this connection has
    /// used: the pages its slot gives back when it is freed (see [`Connection::touched`]).
    carry_touched: usize,
    out_touched: usize,
    /// Draining, the socket looked empty (or a pause's held input is all
    /// taken up): the answers wait until then for more input, and the last
    /// one closes the connection if none comes.
    settle_until: Option<u64>,
    /// Where, in the output buffer, the last handler's answer framed has the
    /// value of its `Connection: keep-alive` field (answers framed while
    /// draining have one): if it is still the last reply queued when the
    /// drain settles, the value becomes `close`.
    keep_alive_at: Option<usize>,
    /// The request whose body is being read is a probe of the health path
    /// (its head is a `GET` or `HEAD` of it): answered as one at its end.
    health_probe: bool,
    /// Input came that no answer follows: empty lines before a request
    /// line, or input discarded after a closing answer (lingering). A reset
    /// behind such input is seen by no send, only by a watch of the socket
    /// (see [`Connection::needs_reset_watch`]).
    unanswered_input: bool,
    /// Whether a client that sends while answers are owed reads them.
    reader: ReaderWatch,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// An unused connection (a free slot).
    pub fn new() -> Self {
        Connection {
            phase: Phase::Closed,
            parser: RequestParser::new(),
            replies: ReplyQueue::new(),
            outgoing: Outgoing::new(),
            sending: false,
            read_closed: false,
            half_close_due: false,
            carry_len: 0,
            timer: Timer::Header,
            deadline: 0,
            idle_since: 0,
            body_started: 0,
            body_bytes: 0,
            linger_started: 0,
            parsed: 0,
            assembly: Assembly::Idle,
            out_sent: 0,
            out_len: 0,
            carry_touched: 0,
            out_touched: 0,
            settle_until: None,
            keep_alive_at: None,
            health_probe: false,
            unanswered_input: false,
            reader: ReaderWatch::default(),
        }
    }

    /// Readies the connection for a new client at `now`.
    pub fn open(&mut self, now: u64, timeouts: &Timeouts) {
        *self = Connection { phase: Phase::Reading, deadline: now + timeouts.header_ms, ..Connection::new() };
    }
}
