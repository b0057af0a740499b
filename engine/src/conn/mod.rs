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

mod assembly;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod lent;
mod out_buf;
mod outgoing;
mod replies;
#[cfg(test)]
mod tests;

pub use outgoing::Outgoing;
pub use replies::ReplyQueue;

use self::assembly::Assembly;
pub use self::out_buf::OutBuf;
use crate::answer::{answer, Answering, Framing, CLOSE, KEEP_ALIVE};
use crate::http::{Limits, Reply, RequestParser, Step};
use crate::response::Responses;

/// How long a closing connection waits for the client's FIN after ours
/// while nothing comes (as nginx's `lingering_timeout`): input moves it on.
pub const LINGER_MS: u64 = 2_000;
/// The longest a closing connection lingers from our FIN while its client
/// goes on sending (as nginx's `lingering_time`, 30 s by default). A client
/// still uploading a refused body (a `413` before it ends, a slow `503`)
/// sends for as long as it takes; closing on its input resets the
/// connection, and a client that sees the reset on its write often reports
/// that instead of reading the answer already sent. Bounded, so that a
/// client that never stops sending cannot hold a slot for good.
pub const LINGER_MOST_MS: u64 = 30_000;
/// How long a draining worker keeps an idle connection for a request already on its way.
pub const DRAIN_GRACE_MS: u64 = 100;
/// A draining worker keeps a keep-alive connection whose last answer went
/// out less than this long ago until this long after it, for its client's
/// next request (answered with `Connection: close`), instead of closing it
/// after [`DRAIN_GRACE_MS`]: a client that used its connection a moment ago
/// is likely to use it again, and a request sent as our close crosses it is
/// lost (only an idempotent one may be sent again: RFC 9110 9.2.2). Seen in
/// upgrades under keep-alive clients pausing 0-300 ms between requests. A
/// drain lasts at most this much longer for it.
pub const DRAIN_RECENT_MS: u64 = 1_000;
/// The same for a connection that has not yet sent its first request. A
/// client connects, then writes: on busy cores its write can come well after
/// the accept, and closing the connection first fails a request that no client
/// sends again (only a reused connection's may be retried, RFC 9110 9.2.2).
/// Seen behind a balancer: `wrk` errors during a rolling upgrade on loaded cores.
pub const DRAIN_FIRST_REQUEST_GRACE_MS: u64 = 1_000;
/// While draining, how long the socket must stay empty before the last
/// answer is made to close the connection: a client streaming pipelined
/// requests may have more on the way than the socket held at one read.
pub const DRAIN_SETTLE_MS: u64 = 100;
/// Body bytes that buy one more second of `--body-timeout`.
const BODY_BYTES_PER_SECOND: u64 = 1024;
/// Bytes of preformatted answers a connection may owe before it stops
/// reading. The run-length queue holds any number of identical answers in
/// one entry, so without a bound a client that pipelines and never reads
/// had the worker read and parse for as long as it sent (hundreds of MB/s
/// on one core), owing more than the socket would ever take, its connection
/// never idle, and a run's count could wrap. Far above what a client that
/// reads its answers keeps owed (16-deep pipelining owes a few KiB).
pub const OWED_BYTES: usize = 256 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Parsing requests and queueing their replies.
    Reading,
    /// The reply queue is full: input waits in the carry buffer until it
    /// drains, and the driver stops reading (back-pressure).
    Paused,
    /// A reply that closes the connection is queued; input after it is
    /// discarded. Once everything is sent the connection closes at once
    /// (`linger: false`: the client asked to close and sent nothing after, or
    /// has closed) or half-closes and lingers.
    Finishing {
        /// Half-close and wait for the client's FIN instead of closing.
        linger: bool,
    },
    /// Our FIN is sent; input is discarded until the client's FIN or the
    /// deadline, so that unread input never turns our close into a reset
    /// that destroys the reply. Input moves the deadline on (up to
    /// [`LINGER_MOST_MS`] from the linger's start).
    Lingering,
    /// Over: the driver closes the socket and frees the slot.
    Closed,
}

/// Which deadline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A header block in progress (`--header-timeout`, from its first byte, not refreshed).
    Header,
    /// A request body in progress (`--body-timeout`, extended by what arrives).
    Body,
    /// Idle between requests, or writing to a slow reader (`--idle-timeout`:
    /// between requests refreshed by input; while answers are owed by send
    /// progress, or at its end by the client's kernel taking bytes, see
    /// [`ReaderWatch`]).
    Idle,
    /// Closing: waiting for the client's FIN ([`LINGER_MS`] of quiet,
    /// refreshed by input up to [`LINGER_MOST_MS`]), or for a last reply to go out.
    Linger,
}

/// While answers are owed and the writer's clock runs (`--idle-timeout`
/// from the last send progress), the client's input does not restart it:
/// queued behind answers it has not read, it is no sign that it reads, and a
/// client that read nothing and sent a byte now and then held its
/// connection until its bytes filled `--max-header` (until 2026-12-07; days
/// at a byte a minute). Nor is a send's silence a sign that it does not: a
/// send on a full socket completes only once about a third of its send
/// buffer is free (`sk_stream_min_wspace`; on loopback the buffer grows to
/// 4 MiB), so a client pipelining and reading slowly but steadily may see
/// none complete within the timeout (its input was what kept it: cutting
/// that, 11c8366, cut such readers off). So when the writer's deadline
/// passes and input came during that clock, the driver asks the kernel how
/// many bytes the client has not acknowledged ([`Connection::take_reader_look`],
/// [`Connection::handle_unacknowledged`]; `SIOCOUTQ`), a number that moves
/// as the client reads: moved since the last look (the first look only sets
/// the mark), the clock starts over; unmoved, the connection closes. Where
/// the kernel cannot tell, input since the last look keeps it, as input did
/// before. A connection that took no input meanwhile closes at the deadline
/// as before, with no question asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ReaderWatch {
    /// Input came while the writer's clock ran: its deadline asks first.
    armed: bool,
    /// Input came since the last look.
    input_since_look: bool,
    /// The deadline passed: the driver is to ask the kernel.
    look_due: bool,
    /// The driver took the question; its answer is awaited.
    awaiting: bool,
    /// The client's unacknowledged bytes at the last look.
    mark: Option<u32>,
}

/// The connection timeouts, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `--header-timeout`.
    pub header_ms: u64,
    /// `--body-timeout`.
    pub body_ms: u64,
    /// `--idle-timeout`.
    pub idle_ms: u64,
}

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
    /// [`LINGER_MOST_MS`] after it, however long its client sends.
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

    // --- getters ---------------------------------------------------------------------------

    /// The phase.
    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the connection next needs [`Connection::handle_timeout`], in the
    /// context's milliseconds: its timer, or the end of a drain's settling.
    pub fn deadline(&self) -> u64 {
        self.settle_until.map_or(self.deadline, |until| until.min(self.deadline))
    }

    /// The running timer.
    #[cfg(test)]
    pub fn timer(&self) -> Timer {
        self.timer
    }

    /// Over: the driver closes the socket and frees the slot.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// A send is outstanding.
    pub fn is_sending(&self) -> bool {
        self.sending
    }

    /// Nothing in progress: no partial request, nothing queued or being sent.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Reading && self.parser.between_requests() && self.carry_len == 0 && !self.owes_output()
    }

    /// Replies are queued, a send is in flight, or the rest of one the
    /// socket took only part of waits for [`Connection::poll_send`] (no send
    /// is in flight then, and the queue may be empty: the send took it all).
    fn owes_output(&self) -> bool {
        self.sending || self.outgoing.is_pending() || !self.replies.is_empty()
    }

    /// Answers are owed and the writer's clock runs (no body is on its
    /// way): input now waits behind them, or is discarded after a closing
    /// one it made (see [`ReaderWatch`]).
    fn writing(&self) -> bool {
        self.owes_output()
            && self.timer == Timer::Idle
            && self.parser.between_requests()
            && matches!(self.phase, Phase::Reading | Phase::Paused | Phase::Finishing { .. })
    }

    /// Part of a request has come and the rest is awaited: a header block
    /// begun, or a body not all here.
    pub fn has_partial_request(&self) -> bool {
        self.phase == Phase::Reading && (self.carry_len > 0 || !self.parser.between_requests())
    }

    /// Its client's reset may come behind input that nothing answers: part
    /// of a request, empty lines before one, or input while it lingers after
    /// a closing answer. On io_uring a multishot receive that takes the last
    /// bytes of a socket already reset posts them as more to come and never
    /// reports the reset (Linux 6.18); a send would report it, and no send
    /// follows such input.
    pub fn needs_reset_watch(&self) -> bool {
        self.has_partial_request() || (self.unanswered_input && !self.read_closed && self.phase != Phase::Closed)
    }

    /// An idle keep-alive connection a full worker may close to make room:
    /// it has been answered, nothing of a next request has come, nothing is
    /// queued or being sent, and its client has not closed.
    pub fn is_reclaimable(&self) -> bool {
        self.is_idle() && self.timer == Timer::Idle && !self.read_closed && self.settle_until.is_none()
    }

    /// When its idle timer last started: the last answer's send, or input.
    pub fn idle_since(&self) -> u64 {
        self.idle_since
    }

    /// The most bytes it has used of its carry buffer and of its output
    /// buffer since it opened (their first bytes: both fill from the start).
    pub fn touched(&self) -> (usize, usize) {
        (self.carry_touched, self.out_touched)
    }

    // --- events ----------------------------------------------------------------------------

    /// Bytes arrived; `carry` is this connection's carry buffer and
    /// `more_waiting` says the socket already holds more. Returns the bytes
    /// taken: fewer than `data` only while paused with the carry buffer full
    /// (the driver holds the rest and offers it again after the next send).
    pub fn handle_input(&mut self, data: &[u8], carry: &mut [u8], more_waiting: bool, ctx: &mut Context<'_>) -> usize {
        let between = self.phase == Phase::Reading && self.carry_len == 0 && self.parser.between_requests();
        if between && self.parser.only_empty_lines(data) {
            // Empty lines before a request line, which the parser skips
            // wherever they come (RFC 9112 §2.2): a read of nothing else
            // begins no request, so it starts no header clock, holds no
            // drain and refreshes nothing. A client sending only them is cut
            // off by the timer that runs: `--header-timeout` from the
            // connection's start before its first request, `--idle-timeout`
            // from the last answer after one.
            self.parser.step(data, &ctx.limits);
            self.unanswered_input = true;
            return data.len();
        }
        if let Phase::Finishing { .. } = self.phase {
            // Discarded, it is no sign of a reader: the deadline stays the
            // one the answer's sends set, or a client that reads nothing of a
            // large answer would hold the connection for as long as it
            // trickled bytes.
            self.discard_after_closing_reply();
            self.settle_until = None;
            return data.len();
        }
        let writing = self.writing();
        let mut rest = data;
        while !rest.is_empty() {
            match self.phase {
                Phase::Finishing { .. } => {
                    // A closing reply parsed from the carry: the rest goes as
                    // input after it does (above).
                    self.discard_after_closing_reply();
                    rest = &[];
                }
                Phase::Lingering => {
                    self.unanswered_input = true;
                    self.extend_linger(ctx);
                    rest = &[];
                }
                Phase::Closed => rest = &[],
                Phase::Reading if self.carry_len == 0 => {
                    // The common case: parse straight from the receive buffer.
                    let used = self.feed(rest, ctx);
                    rest = &rest[used..];
                    if rest.is_empty() || !matches!(self.phase, Phase::Reading | Phase::Paused) {
                        rest = &[];
                        continue;
                    }
                    // An incomplete header block, or input held while replies drain.
                    let keep = rest.len().min(carry.len());
                    carry[..keep].copy_from_slice(&rest[..keep]);
                    self.carry_len = keep;
                    self.carry_touched = self.carry_touched.max(keep);
                    rest = &rest[keep..];
                    if !rest.is_empty() {
                        // Paused with more than the carry holds: the rest waits.
                        break;
                    }
                }
                Phase::Reading | Phase::Paused => {
                    let room = carry.len() - self.carry_len;
                    if room == 0 {
                        // Paused with the carry full (a header block cannot
                        // fill it: the parser refuses it at --max-header).
                        break;
                    }
                    let take = room.min(rest.len());
                    carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
                    self.carry_len += take;
                    self.carry_touched = self.carry_touched.max(self.carry_len);
                    rest = &rest[take..];
                    if self.phase == Phase::Reading {
                        self.parse_carry(carry, ctx);
                    }
                }
            }
        }
        self.settle_until = None;
        if !more_waiting && rest.is_empty() {
            self.settle_if_draining(ctx);
        }
        if writing && self.writing() {
            // Queued behind answers it has not read: the writer's clock runs
            // on, and its deadline asks whether the client reads (`ReaderWatch`).
            self.reader.armed = true;
            self.reader.input_since_look = true;
            return data.len() - rest.len();
        }
        self.after_progress(ctx);
        data.len() - rest.len()
    }

    /// Bytes of input the connection can take now without parsing any: the
    /// carry buffer's free room (a driver reading into a shared buffer reads
    /// no more than this, so nothing it reads ever has to wait elsewhere).
    pub fn input_room(&self, carry_capacity: usize) -> usize {
        carry_capacity - self.carry_len
    }

    /// The send in progress completed with `sent` bytes; returns the requests
    /// it finished answering.
    pub fn handle_sent(&mut self, sent: usize, carry: &mut [u8], ctx: &mut Context<'_>) -> u32 {
        self.sending = false;
        if self.phase == Phase::Closed {
            self.outgoing.finish(ctx.responses);
            return 0;
        }
        if !self.outgoing.advance(sent) {
            // A partial send (a slow reader): `poll_send` goes on from where it
            // stopped. None at all (epoll's send on a full socket) is no progress.
            if sent > 0 {
                self.refresh_deadline(ctx);
            }
            return 0;
        }
        // Counted once the answers are with the kernel, not when parsed.
        let answered = self.outgoing.finish(ctx.responses);
        if self.out_sent == self.out_len {
            // Everything framed is sent: the output buffer starts over.
            self.out_sent = 0;
            self.out_len = 0;
            self.keep_alive_at = None;
        }
        if self.phase == Phase::Paused {
            // Replies drained: take up the held input again. Draining, its
            // answers settle as those of a read that emptied the socket do:
            // the driver reads again now, and any input it finds moves the
            // settle on (as after any read).
            self.phase = Phase::Reading;
            self.parse_carry(carry, ctx);
            self.settle_if_draining(ctx);
        }
        if let Phase::Finishing { linger } = self.phase {
            if self.replies.is_empty() {
                if linger && !self.read_closed {
                    self.start_linger(ctx);
                } else {
                    self.phase = Phase::Closed;
                }
                return answered;
            }
        }
        self.after_progress(ctx);
        answered
    }

    /// The send failed (the client reset the connection, or it was cancelled).
    pub fn handle_send_failed(&mut self, ctx: &mut Context<'_>) {
        self.sending = false;
        self.outgoing.finish(ctx.responses);
        self.phase = Phase::Closed;
    }

    /// The client closed its side.
    pub fn handle_peer_closed(&mut self, ctx: &mut Context<'_>) {
        self.read_closed = true;
        match self.phase {
            Phase::Lingering => self.phase = Phase::Closed,
            // Answer what was asked, then close: no need to wait for a FIN now.
            Phase::Finishing { .. } if !self.owes_output() => self.phase = Phase::Closed,
            Phase::Finishing { .. } => self.phase = Phase::Finishing { linger: false },
            Phase::Reading | Phase::Paused => self.after_progress(ctx),
            Phase::Closed => {}
        }
    }

    /// Reading failed: the connection is over.
    pub fn handle_read_error(&mut self) {
        self.phase = Phase::Closed;
    }

    /// The deadline passed (the driver calls this once `ctx.now >= deadline()`).
    pub fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if self.settle_until.is_some_and(|until| until <= ctx.now) {
            // Draining, and nothing more came: the last answer closes.
            self.settle_until = None;
            self.close_after_last_answer(&mut ctx.out);
            return;
        }
        match (self.phase, self.timer) {
            (Phase::Closed, _) => {}
            // A body too slow to finish: say so where a reply can still be sent.
            (Phase::Reading | Phase::Paused, Timer::Body) if !self.replies.is_full() => {
                // A final reply, counted as every other one queued is.
                self.parsed += 1;
                self.push_page(Reply::RequestTimeout);
                // The request ends here: what was gathered of it frees its
                // buffer now, not when a linger that may last 30 s ends.
                if let Answering::Dynamic(dynamic) = &mut ctx.answering {
                    self.assembly.release(dynamic.bodies);
                }
                self.carry_len = 0;
                self.phase = Phase::Finishing { linger: true };
                self.timer = Timer::Linger;
                self.deadline = ctx.now + LINGER_MS;
            }
            // The writer's deadline, input having come meanwhile: ask whether
            // the client reads before closing (`ReaderWatch`). Not a second
            // time while the first question is unanswered.
            (Phase::Reading | Phase::Paused | Phase::Finishing { .. }, Timer::Idle)
                if self.reader.armed && !self.reader.awaiting && self.owes_output() =>
            {
                self.reader.look_due = true;
                // Until the answer: the driver may have to wait for it.
                self.deadline = ctx.now + ctx.timeouts.idle_ms;
            }
            _ => self.phase = Phase::Closed,
        }
    }

    /// The deadline passed while the driver could not read what the client
    /// may have sent: on io_uring its receive found every buffer of the
    /// ring held by other connections. That wait is the worker's, not the
    /// client's, so a timer that waits on the client's input (for a
    /// request's head, its body, or the next request) starts over rather
    /// than close the connection; true when it did. False, and left to
    /// [`Connection::handle_timeout`], for every other case: answers owed
    /// (the writer's clock), a linger.
    ///
    /// While draining, only while its receive `waits_for_buffer` now, and a
    /// drain's grace at a time: a request sent before the drain and unread
    /// for want of a buffer is answered (until 2026-12-07 the drain's
    /// hurried deadline closed it unanswered). Once its receive is armed
    /// again it reads what came, or nothing came (a client that met the
    /// empty ring idle), and the drain does not wait on it.
    pub fn postpone_for_unread_input(&mut self, ctx: &Context<'_>, waits_for_buffer: bool) -> bool {
        let drain_waits = !ctx.draining || waits_for_buffer;
        if self.phase != Phase::Reading || self.settle_until.is_some() || !drain_waits || self.owes_output() {
            return false;
        }
        let wait = match self.timer {
            Timer::Linger => return false,
            _ if ctx.draining => DRAIN_GRACE_MS,
            Timer::Header => ctx.timeouts.header_ms,
            Timer::Body => ctx.timeouts.body_ms,
            Timer::Idle => ctx.timeouts.idle_ms,
        };
        // The whole wait moves the timer on: a body's clock runs from its
        // start (`refresh_deadline`), so the start moves with it.
        let shift = (ctx.now + wait).saturating_sub(self.deadline);
        self.deadline += shift;
        if self.timer == Timer::Body {
            self.body_started += shift;
        }
        true
    }

    /// The writer's deadline passed with input come meanwhile: true once,
    /// when the driver is to ask the kernel how many bytes written to the
    /// socket the client has not acknowledged (`SIOCOUTQ`), and give the
    /// answer to [`Connection::handle_unacknowledged`].
    pub fn take_reader_look(&mut self) -> bool {
        let due = std::mem::take(&mut self.reader.look_due);
        self.reader.awaiting |= due;
        due
    }

    /// The kernel's count of the bytes the client has not acknowledged
    /// (`None`: it cannot tell), asked for by [`Connection::take_reader_look`]:
    /// moved since the last look (or the first look), the writer's clock
    /// starts over; unmoved, the client reads nothing and the connection
    /// closes. Moot (ignored) once the clock started over meanwhile.
    pub fn handle_unacknowledged(&mut self, unacknowledged: Option<u32>, ctx: &Context<'_>) {
        if !std::mem::take(&mut self.reader.awaiting) || self.phase == Phase::Closed {
            return;
        }
        let moved = match unacknowledged {
            Some(count) => self.reader.mark != Some(count),
            // As before the kernel was asked: its input keeps it.
            None => self.reader.input_since_look,
        };
        if !moved {
            self.phase = Phase::Closed;
            return;
        }
        self.reader.mark = unacknowledged;
        self.reader.input_since_look = false;
        self.deadline = ctx.now + ctx.timeouts.idle_ms;
    }

    /// The worker began to drain: an idle connection closes after a short
    /// grace (a request sent before the drain may still be on its way), the
    /// others after the last reply of what they hold.
    pub fn handle_drain(&mut self, ctx: &Context<'_>) {
        self.hurry_if_idle(ctx);
    }

    // --- what to do next ---------------------------------------------------------------------

    /// The next send to start, if one is due: the `msghdr` of the slices, valid
    /// until [`Connection::handle_sent`] or [`Connection::handle_send_failed`].
    pub fn poll_send(&mut self, ctx: &mut Context<'_>) -> Option<*const libc::msghdr> {
        if self.sending || self.phase == Phase::Closed {
            return None;
        }
        if self.settle_until.is_some_and(|until| ctx.now < until) {
            return None;
        }
        if !self.outgoing.is_pending()
            && !self.outgoing.fill(&mut self.replies, ctx.responses, &ctx.out, &mut self.out_sent)
        {
            return None;
        }
        self.sending = true;
        Some(self.outgoing.header())
    }

    /// The send just returned by [`Connection::poll_send`] when it is one
    /// slice: start and length, for a plain `send`.
    pub fn single_slice(&self) -> Option<(*const u8, usize)> {
        self.outgoing.single_slice()
    }

    /// True while the driver should read from the socket.
    pub fn wants_read(&self) -> bool {
        !self.read_closed && matches!(self.phase, Phase::Reading | Phase::Finishing { .. } | Phase::Lingering)
    }

    /// True once when our FIN is due (`shutdown(SHUT_WR)`).
    pub fn take_half_close(&mut self) -> bool {
        std::mem::take(&mut self.half_close_due)
    }

    /// Requests parsed (answers queued) since the last call.
    pub fn take_parsed(&mut self) -> u32 {
        std::mem::take(&mut self.parsed)
    }

    /// Gives back what a connection holds when its slot is freed (a send's
    /// page hold, if the close cut a send short).
    pub fn release(&mut self, ctx: &mut Context<'_>) {
        self.outgoing.finish(ctx.responses);
        if let Answering::Dynamic(dynamic) = &mut ctx.answering {
            self.assembly.release(dynamic.bodies);
        }
        self.phase = Phase::Closed;
    }

    // --- inside ------------------------------------------------------------------------------

    /// Parses requests from `input` into the reply queue; returns the bytes
    /// used. Stops at an incomplete header block, a closing reply (then all
    /// of `input` counts as used: the rest is discarded) or a full queue or
    /// output buffer (then the connection pauses).
    fn feed(&mut self, input: &[u8], ctx: &mut Context<'_>) -> usize {
        let mut at = 0;
        // A head whose whole body is in `input` too: answered from it, no copy.
        let mut in_place: Option<(usize, usize)> = None;
        while at < input.len() {
            let between = self.parser.between_requests();
            // Pause only between requests, with room for a request's replies
            // (`100 Continue` and its answer) and its framed response kept:
            // a request once begun is never left half-parsed for lack of room.
            if between && (!self.replies.has_room_for(2) || !self.has_room_to_answer(ctx)) {
                self.phase = Phase::Paused;
                break;
            }
            let start = at;
            let step = match &mut ctx.answering {
                Answering::Dynamic(dynamic) if self.assembly != Assembly::Idle => {
                    let (assembly, bodies) = (&mut self.assembly, &mut *dynamic.bodies);
                    self.parser.step_with(&input[at..], &ctx.limits, &mut |data| assembly.append(data, bodies))
                }
                _ => self.parser.step(&input[at..], &ctx.limits),
            };
            let Step::Advance { consumed, reply } = step else { break };
            at += consumed;
            if !between {
                self.body_bytes += consumed as u64;
            } else if !self.parser.between_requests() {
                self.body_started = ctx.now;
                self.body_bytes = 0;
                // A probe of the health path is one with a body too; the
                // handler never sees it, so its body is not kept.
                let as_if_answered = if self.parser.answering_head() { Reply::Head } else { Reply::Ok };
                self.health_probe = is_health_check(as_if_answered, &input[start..at], ctx.health_path);
                // A body follows the head: keep the head where the handler will find it.
                if let (Answering::Dynamic(dynamic), false) = (&mut ctx.answering, self.health_probe) {
                    let whole_body_here = self.parser.body_remaining().is_some_and(|n| (input.len() - at) as u64 >= n);
                    if whole_body_here {
                        in_place = Some((start, at));
                    } else if !self.assembly.start(&input[start..at], dynamic.bodies) {
                        // No buffer free for the body: refuse, the server decides to close.
                        self.parsed += 1;
                        self.push_page(Reply::ServiceUnavailable);
                        self.phase = Phase::Finishing { linger: true };
                        return input.len();
                    }
                }
            }
            let Some(mut reply) = reply else { continue };
            if reply.is_final() {
                self.parsed += 1;
            }
            let probe = if between {
                is_health_check(reply, &input[start..at], ctx.health_path)
            } else {
                // The end of a body: its head's probe, unless it was refused.
                reply.is_final() && std::mem::take(&mut self.health_probe) && framing_of(reply).is_some()
            };
            if probe {
                reply = if ctx.healthy { Reply::HealthReady } else { Reply::HealthDraining };
            }
            if let (Answering::Dynamic(_), Some(framing)) = (&ctx.answering, framing_of(reply)) {
                let head_only = matches!(reply, Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose);
                let closes =
                    self.answer_with_handler(input, between, start, at, in_place.take(), head_only, framing, ctx);
                if closes {
                    let client_asked = framing == Framing::Close;
                    self.phase = Phase::Finishing { linger: !(client_asked && at == input.len()) };
                    return input.len();
                }
                continue;
            }
            if let Answering::Dynamic(dynamic) = &mut ctx.answering {
                // An error ends the request being gathered.
                if reply != Reply::Continue {
                    self.assembly.release(dynamic.bodies);
                }
            }
            self.push_page(reply);
            if reply.closes() {
                // A client that asked to close and sent nothing after gets a
                // plain close. When the server decides (an error) the client
                // may still be sending: closing on unread input would reset
                // the connection and could destroy the reply, so it lingers.
                // A health check closes too: nothing follows it in practice.
                let client_asked =
                    matches!(reply, Reply::OkClose | Reply::HeadClose | Reply::HealthReady | Reply::HealthDraining);
                self.phase = Phase::Finishing { linger: !(client_asked && at == input.len()) };
                return input.len();
            }
        }
        at
    }

    /// Runs the handler on the request that just completed and queues its
    /// framed response; true when the connection closes after it. The head
    /// and body are in `input` (`between`: a request without a body, its
    /// head `start..at`; `in_place`: head and body in `input`) or in the
    /// pool buffer gathered for them.
    #[allow(clippy::too_many_arguments)]
    fn answer_with_handler(
        &mut self,
        input: &[u8],
        between: bool,
        start: usize,
        at: usize,
        in_place: Option<(usize, usize)>,
        head_only: bool,
        framing: Framing,
        ctx: &mut Context<'_>,
    ) -> bool {
        let Answering::Dynamic(dynamic) = &mut ctx.answering else { return false };
        // While draining, the answer says keep-alive in a field, so that it
        // can still close the connection if it turns out the last.
        let framing = if ctx.draining && framing == Framing::KeepAlive { Framing::KeepAliveField } else { framing };
        let date = ctx.responses.date();
        let peer = dynamic.peer;
        let room = self.out_len..ctx.out.len();
        let out = ctx.out.slice_mut(room);
        let result = match (between, in_place, self.assembly) {
            (true, _, _) => {
                answer(dynamic.handler, dynamic.scratch, &input[start..at], &[], peer, head_only, framing, date, out)
            }
            (false, Some((head_start, head_end)), _) => answer(
                dynamic.handler,
                dynamic.scratch,
                &input[head_start..head_end],
                &input[head_end..at],
                peer,
                head_only,
                framing,
                date,
                out,
            ),
            (false, None, Assembly::Pooled { index, head_len, len }) => {
                let gathered = dynamic.bodies.contents(index, len);
                let (head, body) = gathered.split_at(head_len);
                answer(dynamic.handler, dynamic.scratch, head, body, peer, head_only, framing, date, out)
            }
            (false, None, Assembly::Idle) => None,
        };
        self.assembly.release(dynamic.bodies);
        match result {
            Some(answered) => {
                self.keep_alive_at = answered.keep_alive_at.map(|at| self.out_len + at);
                self.out_len += answered.len;
                self.out_touched = self.out_touched.max(self.out_len);
                self.replies.push_dynamic(answered.len);
                answered.closes || framing == Framing::Close
            }
            None => {
                // Cannot happen (the room was checked, the head parsed before);
                // answer as a server that failed would, and close. What the
                // framing wrote before it stopped is unknown: count it all.
                self.out_touched = ctx.out.len();
                self.push_page(Reply::ServiceUnavailable);
                true
            }
        }
    }

    /// Queues a preformatted reply to the request being answered; any
    /// answer to a `HEAD` (an error, the health path's) goes without its
    /// content (RFC 9110 §9.3.2: its client reads none, and would take it
    /// for the next response). The `Head` pages have none already.
    fn push_page(&mut self, reply: Reply) {
        let with_content = !matches!(reply, Reply::Continue | Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose);
        if self.parser.answering_head() && with_content {
            self.replies.push_head_of(reply);
        } else {
            self.replies.push(reply);
        }
    }

    /// Room to answer one more request: with a handler, room in the output
    /// buffer for the largest response; from the preformatted pages, fewer
    /// than [`OWED_BYTES`] owed (counted at the longest keep-alive page).
    fn has_room_to_answer(&self, ctx: &Context<'_>) -> bool {
        match &ctx.answering {
            Answering::Fixed => self.replies.replies() * ctx.responses.len_of(Reply::OkKeepAlive) < OWED_BYTES,
            Answering::Dynamic(dynamic) => ctx.out.len() - self.out_len >= dynamic.scratch.largest_framed(),
        }
    }

    /// Parses what the carry buffer holds and keeps the unparsed tail.
    fn parse_carry(&mut self, carry: &mut [u8], ctx: &mut Context<'_>) {
        let held = self.carry_len;
        let used = self.feed(&carry[..held], ctx);
        if matches!(self.phase, Phase::Finishing { .. }) {
            self.carry_len = 0;
            return;
        }
        carry.copy_within(used..held, 0);
        self.carry_len = held - used;
    }

    /// Draining, with no more input known to wait (the socket looked empty
    /// after a read, or held input was all taken up after a pause) and
    /// answers queued: hold them a moment for more input; if none comes, the
    /// last one closes the connection ([`Connection::handle_timeout`]).
    fn settle_if_draining(&mut self, ctx: &Context<'_>) {
        if ctx.draining && self.phase == Phase::Reading && !self.replies.is_empty() {
            self.settle_until = Some(ctx.now + DRAIN_SETTLE_MS);
        }
    }

    /// While draining, once a read has emptied the socket and left no
    /// partial request, the last queued answer carries `Connection: close`
    /// and the connection closes after it: every request the client sent is
    /// answered, and the client learns not to send more.
    fn close_after_last_answer(&mut self, out: &mut OutBuf<'_>) {
        let settled = self.phase == Phase::Reading && self.carry_len == 0 && self.parser.between_requests();
        if settled && (self.replies.close_last() || self.close_last_handler_answer(out)) {
            self.phase = Phase::Finishing { linger: true };
        }
    }

    /// Turns the `Connection: keep-alive` of the handler's answer queued last
    /// into `Connection: close`, moving the rest of the answer (the blank
    /// line, the body: the end of the output buffer) back by the difference.
    /// False when the last reply queued is not such an answer. Its bytes are
    /// still unsent: a run is taken for sending whole, and this one is queued.
    fn close_last_handler_answer(&mut self, out: &mut OutBuf<'_>) -> bool {
        let Some(at) = self.keep_alive_at.take() else { return false };
        if !self.replies.last_is_dynamic() {
            return false;
        }
        // From the field to the end of what is written: none of it is sent yet.
        let out = out.slice_mut(at..self.out_len);
        debug_assert_eq!(&out[..KEEP_ALIVE.len()], KEEP_ALIVE);
        out[..CLOSE.len()].copy_from_slice(CLOSE);
        out.copy_within(KEEP_ALIVE.len().., CLOSE.len());
        let shorter = KEEP_ALIVE.len() - CLOSE.len();
        self.out_len -= shorter;
        self.replies.shorten_last(shorter);
        true
    }

    /// After input or a send: close a finished half-closed connection, move
    /// the deadline, hurry an idle one out while draining.
    fn after_progress(&mut self, ctx: &mut Context<'_>) {
        match self.phase {
            Phase::Closed | Phase::Lingering => return,
            Phase::Reading if self.read_closed && !self.owes_output() => {
                // The client is gone and nothing is owed (an incomplete request
                // can no longer complete).
                self.phase = Phase::Closed;
                return;
            }
            _ => {}
        }
        self.refresh_deadline(ctx);
        if ctx.draining {
            self.hurry_if_idle(ctx);
        }
    }

    /// Draining: an idle connection closes after a grace, a longer one while
    /// its first request has not come (its timer is still the header timer
    /// it was opened with; any request begun or answered has moved it on),
    /// and one whose client used it a moment ago not before
    /// [`DRAIN_RECENT_MS`] after that.
    fn hurry_if_idle(&mut self, ctx: &Context<'_>) {
        if self.is_idle() {
            let until = match self.timer {
                Timer::Header => ctx.now + DRAIN_FIRST_REQUEST_GRACE_MS,
                _ => (ctx.now + DRAIN_GRACE_MS).max(self.idle_since + DRAIN_RECENT_MS),
            };
            self.deadline = self.deadline.min(until);
        }
    }

    fn refresh_deadline(&mut self, ctx: &Context<'_>) {
        let now = ctx.now;
        // Progress (a send's, or input while nothing was owed): what the
        // reader watch saw is moot, and an answer on its way with it.
        self.reader = ReaderWatch::default();
        if !self.parser.between_requests() && matches!(self.phase, Phase::Reading | Phase::Paused) {
            // A body on its way: it has `--body-timeout`, plus a second per KiB that came.
            if self.timer != Timer::Body {
                self.timer = Timer::Body;
            }
            let earned = self.body_bytes / BODY_BYTES_PER_SECOND * 1000;
            self.deadline = self.body_started + ctx.timeouts.body_ms + earned;
            return;
        }
        let busy = self.owes_output();
        if !busy && self.carry_len > 0 && self.phase == Phase::Reading {
            // A header block in progress: its clock started with its first byte.
            if self.timer != Timer::Header {
                self.timer = Timer::Header;
                self.deadline = now + ctx.timeouts.header_ms;
            }
            return;
        }
        self.timer = Timer::Idle;
        self.idle_since = now;
        self.deadline = now + ctx.timeouts.idle_ms;
    }

    /// Input after a closing reply is discarded; closing with it unread
    /// would reset the connection, so the close waits for the client's FIN.
    fn discard_after_closing_reply(&mut self) {
        self.phase = Phase::Finishing { linger: true };
        self.unanswered_input = true;
    }

    fn start_linger(&mut self, ctx: &Context<'_>) {
        // Every answer is out: a look still on its way (asked through the
        // ring) is moot, and must not move or end the linger.
        self.reader = ReaderWatch::default();
        self.phase = Phase::Lingering;
        self.half_close_due = true;
        self.timer = Timer::Linger;
        self.linger_started = ctx.now;
        self.deadline = ctx.now + LINGER_MS;
    }

    /// Input while lingering: its client is still sending, and closing now
    /// would answer the rest with a reset, so the linger waits another
    /// [`LINGER_MS`] of quiet, but ends [`LINGER_MOST_MS`] after it began.
    /// Not while draining: a drain then waits for a lingering connection no
    /// longer than [`LINGER_MS`] after it began, as when the linger never moved.
    fn extend_linger(&mut self, ctx: &Context<'_>) {
        if ctx.draining {
            return;
        }
        self.deadline = (ctx.now + LINGER_MS).min(self.linger_started + LINGER_MOST_MS);
    }
}

/// How a successful request's response ends the exchange; `None` for replies
/// that are not a request's success (errors, `100 Continue`).
fn framing_of(reply: Reply) -> Option<Framing> {
    match reply {
        Reply::Ok | Reply::Head => Some(Framing::KeepAlive),
        Reply::OkKeepAlive | Reply::HeadKeepAlive => Some(Framing::KeepAliveField),
        Reply::OkClose | Reply::HeadClose => Some(Framing::Close),
        _ => None,
    }
}

/// True when `head` (a complete header block) is a `GET` or a `HEAD` of
/// the health path answered by `reply` (a success). A
/// `HEAD` gets the same status as a `GET` (RFC 9110 §9.3.2), without the
/// content: probes are often `HEAD`s (HAProxy's `option httpchk HEAD`).
/// Until 2026-12-05 a `HEAD` was not one, and got the plain `200` even from
/// a draining worker or a lame duck, so such a probe never saw it go.
///
/// The target names the path as a handler's route sees it: its path
/// (`Request::path()`, an absolute-form's without its scheme and authority:
/// `http://host/healthz`, which RFC 9112 §3.2.2 says a server MUST accept)
/// and its query (none, unless the health path has one) are the health
/// path's. Until 2026-12-05 only the origin-form did: an absolute-form
/// probe got the handler's answer, `200` from a lame duck as well.
///
/// A probe with a body (`Content-Length`, or `chunked` even when empty) is
/// one too, answered once its body is read. Until 2026-12-06 it was the
/// handler's, `200` from a lame duck as well.
fn is_health_check(reply: Reply, head: &[u8], health_path: Option<&[u8]>) -> bool {
    let Some(health_path) = health_path else { return false };
    let after_method = match reply {
        Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => head.strip_prefix(b"GET "),
        Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose => head.strip_prefix(b"HEAD "),
        _ => None,
    };
    let Some(after_method) = after_method else { return false };
    let target = after_method.split(|&b| b == b' ').next().unwrap_or_default();
    // UTF-8 whenever the parser took the head (it refuses a target that is not).
    let Ok(target) = std::str::from_utf8(target) else { return false };
    let (path, query) = match health_path.iter().position(|&b| b == b'?') {
        Some(at) => (&health_path[..at], Some(&health_path[at + 1..])),
        None => (health_path, None),
    };
    let target_query = crate::http::query_of(target).map(str::as_bytes);
    crate::http::path_of(target).as_bytes() == path && target_query == query
}
