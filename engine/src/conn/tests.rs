//! The connection state machine driven by hand: every event in every phase,
//! and any split of the input giving the same bytes out as the whole.

use std::time::SystemTime;

use super::close::{LINGER_MOST_MS, LINGER_MS};
use super::drain::{DRAIN_FIRST_REQUEST_GRACE_MS, DRAIN_GRACE_MS, DRAIN_SETTLE_MS};
use super::lent::{gathered, lend, DynamicParts};
use super::requests::OWED_BYTES;
use super::*;
use crate::answer::{BodyPool, ResponseScratch};
use crate::handler::{Handler, Request, Response};
use crate::http::Reply;
use crate::test_rng::Rng;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
const BAD: &[u8] = b"NOT A REQUEST\r\n\r\n";
const TIMEOUTS: Timeouts = Timeouts { header_ms: 10_000, body_ms: 30_000, idle_ms: 60_000 };
const CARRY: usize = 8192;

/// A handler for the tests: echoes the method, path and body.
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        res.header("X-Path", req.path()).body(req.method().as_bytes()).body(b" ").body(req.body());
    }
}

/// Everything around a connection: what a worker would lend it.
struct World {
    responses: Responses,
    now: u64,
    draining: bool,
    dynamic: Option<DynamicParts<Echo>>,
    health_path: Option<&'static [u8]>,
}

impl World {
    fn ctx(&mut self) -> Context<'_> {
        let (answering, out) = lend(self.dynamic.as_mut());
        Context {
            now: self.now,
            limits: Limits { max_header: 8192, max_body: 1 << 20 },
            timeouts: TIMEOUTS,
            responses: &mut self.responses,
            draining: self.draining,
            answering,
            out,
            health_path: self.health_path,
            healthy: !self.draining,
        }
    }
}

/// A connection with everything a driver would give it, and a fake socket.
struct Harness {
    conn: Connection,
    carry: Vec<u8>,
    world: World,
    now: u64,
    /// Bytes "sent" so far.
    sent: Vec<u8>,
    answered: u32,
}

impl Harness {
    /// A connection answered from preformatted pages.
    fn new() -> Harness {
        Harness::with(None)
    }

    /// A connection answered by [`Echo`], with `buffers` body buffers and
    /// room for responses of `max_response` bytes.
    fn with_handler(buffers: usize, max_response: usize) -> Harness {
        let scratch = ResponseScratch::new(max_response).expect("a scratch");
        let out = vec![0; 2 * scratch.largest_framed()];
        Harness::with(Some(DynamicParts {
            handler: Echo,
            scratch,
            bodies: BodyPool::new(buffers, 8192 + (1 << 20)).expect("a body pool"),
            out,
        }))
    }

    fn with(dynamic: Option<DynamicParts<Echo>>) -> Harness {
        let mut conn = Connection::new();
        conn.open(1_000, &TIMEOUTS);
        Harness {
            conn,
            carry: vec![0; CARRY],
            world: World {
                responses: Responses::new(b"hi\n", SystemTime::UNIX_EPOCH).expect("replies"),
                now: 1_000,
                draining: false,
                dynamic,
                health_path: Some(b"/healthz"),
            },
            now: 1_000,
            sent: Vec::new(),
            answered: 0,
        }
    }

    fn sync(&mut self) {
        self.world.now = self.now;
    }

    /// Offers `bytes`; returns how many the connection took.
    fn input(&mut self, bytes: &[u8]) -> usize {
        self.sync();
        self.conn.handle_input(bytes, &mut self.carry, false, &mut self.world.ctx())
    }

    /// Starts the due send, if any; returns its bytes without completing it.
    fn start_send(&mut self) -> Option<Vec<u8>> {
        self.sync();
        let header = self.conn.poll_send(&mut self.world.ctx())?;
        // SAFETY: poll_send's header, its iovecs into the connection, the
        // pages and the output buffer, all alive and unchanged until the send
        // is handled.
        let bytes = unsafe { gathered(header) };
        Some(bytes)
    }

    /// Completes a started send with `n` bytes taken by the kernel.
    fn complete(&mut self, bytes: &[u8], n: usize) {
        self.sync();
        self.sent.extend_from_slice(&bytes[..n]);
        self.answered += self.conn.handle_sent(n, &mut self.carry, &mut self.world.ctx());
    }

    /// Sends everything that is due, whole.
    fn flush(&mut self) {
        while let Some(bytes) = self.start_send() {
            self.complete(&bytes, bytes.len());
        }
    }

    fn peer_closed(&mut self) {
        self.sync();
        self.conn.handle_peer_closed(&mut self.world.ctx());
    }

    fn fail_send(&mut self) {
        self.sync();
        self.conn.handle_send_failed(&mut self.world.ctx());
    }

    fn drain(&mut self) {
        self.world.draining = true;
        self.sync();
        self.conn.handle_drain(&self.world.ctx());
    }

    fn at_deadline(&mut self) {
        self.now = self.conn.deadline();
        self.sync();
        self.conn.handle_timeout(&mut self.world.ctx());
    }

    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent).into_owned()
    }

    fn statuses(&self) -> Vec<u16> {
        let text = self.sent_text();
        text.match_indices("HTTP/1.1 ").map(|(at, _)| text[at + 9..at + 12].parse().expect("status")).collect()
    }
}

#[test]
fn a_keep_alive_request_is_answered_and_reading_goes_on() {
    let mut h = Harness::new();
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert_eq!(h.conn.timer(), Timer::Header);
    h.input(GET);
    h.flush();
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.answered, 1);
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
    assert!(h.conn.is_idle());
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Idle, h.now + TIMEOUTS.idle_ms));
}

#[test]
fn pipelined_requests_go_out_in_one_send() {
    let mut h = Harness::new();
    h.input(&[GET, GET, GET].concat());
    let bytes = h.start_send().expect("a send is due");
    assert!(h.start_send().is_none(), "one send at a time");
    h.complete(&bytes, bytes.len());
    assert_eq!(h.statuses(), [200, 200, 200]);
    assert_eq!(h.answered, 3);
}

#[test]
fn a_client_that_asks_to_close_gets_a_plain_close() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    h.flush();
    assert!(h.conn.is_closed());
    assert!(!h.conn.take_half_close(), "no lingering");
}

#[test]
fn input_after_a_closing_reply_makes_the_close_linger() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    h.input(GET);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [200], "nothing after the closing reply is answered");
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert!(h.conn.take_half_close());
    assert!(!h.conn.take_half_close(), "once");
    assert!(h.conn.wants_read(), "lingering reads to see the FIN");
    h.input(GET);
    assert_eq!(h.conn.phase(), Phase::Lingering, "input is discarded");
    h.peer_closed();
    assert!(h.conn.is_closed());
}

#[test]
fn an_error_lingers_until_the_deadline_without_a_fin() {
    let mut h = Harness::new();
    h.input(BAD);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [400]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert_eq!(h.conn.timer(), Timer::Linger);
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn input_while_lingering_moves_the_deadline_on_up_to_the_cap() {
    let mut h = Harness::new();
    // A body over the limit: refused at its head, while the client still sends it.
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\npart");
    h.input(b"more of the body");
    h.flush();
    assert_eq!(h.statuses(), [413]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    let started = h.now;
    assert_eq!(h.conn.deadline(), started + LINGER_MS);
    // The client sends on, a piece in every fifth of the quiet window.
    while h.now + LINGER_MS / 5 + LINGER_MS <= started + LINGER_MOST_MS {
        h.now += LINGER_MS / 5;
        h.input(b"more of the body");
        assert_eq!(h.conn.deadline(), h.now + LINGER_MS, "input moves the deadline to a quiet window from now");
        assert_eq!(h.conn.phase(), Phase::Lingering);
    }
    // Near the cap it moves no further than the cap.
    h.now = started + LINGER_MOST_MS - LINGER_MS / 5;
    h.input(b"more of the body");
    assert_eq!(h.conn.deadline(), started + LINGER_MOST_MS, "the cap from the linger's start");
    h.now = started + LINGER_MOST_MS - 1;
    h.input(b"more of the body");
    assert_eq!(h.conn.deadline(), started + LINGER_MOST_MS);
    assert_eq!(h.conn.timer(), Timer::Linger);
    h.at_deadline();
    assert!(h.conn.is_closed(), "a client that never stops sending is cut off at the cap");
    assert_eq!(h.statuses(), [413], "nothing more is sent");
}

#[test]
fn a_quiet_window_ends_a_linger_that_input_moved_on() {
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.phase(), Phase::Lingering);
    for _ in 0..10 {
        h.now += LINGER_MS / 2;
        h.input(b"still sending");
    }
    let last_input = h.now;
    assert!(last_input > 1_000 + LINGER_MS, "input kept it past a fixed linger");
    h.now = last_input + LINGER_MS - 1;
    assert!(h.conn.deadline() > h.now, "not due within the quiet window");
    h.at_deadline();
    assert_eq!(h.now, last_input + LINGER_MS, "due a quiet window after the last input");
    assert!(h.conn.is_closed());

    // The client's FIN still ends it at once.
    let mut fin = Harness::new();
    fin.input(BAD);
    fin.flush();
    fin.now += LINGER_MS / 2;
    fin.input(b"still sending");
    fin.peer_closed();
    assert!(fin.conn.is_closed());
}

#[test]
fn a_draining_worker_does_not_move_a_linger_on() {
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    h.now += LINGER_MS / 2;
    h.input(b"still sending");
    let deadline = h.now + LINGER_MS;
    assert_eq!(h.conn.deadline(), deadline);
    h.drain();
    h.now += LINGER_MS / 2;
    h.input(b"still sending");
    assert_eq!(h.conn.deadline(), deadline, "a drain waits for it no longer than a quiet window from the drain");
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn a_full_queue_pauses_reading_until_the_replies_are_sent() {
    let mut h = Harness::new();
    // Alternating kinds fill the run-length queue fast.
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    h.input(&burst);
    assert_eq!(h.conn.phase(), Phase::Paused);
    assert!(!h.conn.wants_read(), "back-pressure: stop reading");
    h.flush();
    assert_eq!(h.answered, 40, "the held input is answered once the queue drains");
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
}

/// Identical pipelined requests fill no run-length entry, so the bound on
/// what is owed is in bytes: a client that sends and never reads stops
/// being read (and TCP holds it back) once its answers owe [`OWED_BYTES`].
#[test]
fn a_client_that_never_reads_is_read_only_until_its_answers_owe_the_bound() {
    let mut h = Harness::new();
    let page = h.world.responses.len_of(Reply::OkKeepAlive);
    let bound = OWED_BYTES.div_ceil(page);
    let chunk = GET.repeat(CARRY / GET.len());
    let mut taken = 0;
    for _ in 0..4 * bound * GET.len() / chunk.len() {
        taken += h.input(&chunk);
        if h.conn.phase() == Phase::Paused && !h.conn.wants_read() {
            break;
        }
    }
    assert_eq!(h.conn.phase(), Phase::Paused, "it stops reading");
    assert!(!h.conn.wants_read());
    assert!(taken <= bound * GET.len() + CARRY, "took {taken} bytes for {bound} answers of {page} bytes");
    assert!(taken >= (bound - 1) * GET.len(), "it answers up to the bound: took {taken}");
    // Sent at last: every request taken is answered, in order, and reading goes on.
    let mut sends = 0;
    while h.conn.phase() == Phase::Paused {
        h.flush();
        sends += 1;
        assert!(sends < bound, "it never resumed");
    }
    h.flush();
    assert_eq!(h.answered as usize, taken / GET.len());
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
}

#[test]
fn input_while_a_closing_answer_waits_for_its_reader_moves_no_deadline() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    let bytes = h.start_send().expect("send");
    // The client reads slowly, or not at all: part of the answer is taken.
    h.complete(&bytes, 10);
    assert!(h.start_send().is_some(), "the rest goes out, waiting for room");
    let deadline = h.conn.deadline();
    assert_eq!((h.conn.timer(), deadline), (Timer::Idle, h.now + TIMEOUTS.idle_ms), "send progress sets it");
    // It sends on and reads nothing: discarded input is no sign of a reader.
    for _ in 0..4 {
        h.now += TIMEOUTS.idle_ms / 5;
        h.input(b"x");
        assert_eq!(h.conn.deadline(), deadline, "input moved the deadline of an answer nobody reads");
    }
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    // Its reading moves it on.
    h.complete(b"0123456789", 10);
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms, "a send's progress moves it");
    h.at_deadline();
    assert!(h.conn.is_closed());
}

impl Harness {
    /// A keep-alive answer the client took the start of, its rest waiting
    /// for room; returns the writer's deadline the send set.
    fn answer_waiting_for_its_reader(&mut self) -> u64 {
        self.input(GET);
        let bytes = self.start_send().expect("send");
        self.complete(&bytes, 10);
        assert!(self.start_send().is_some(), "the rest goes out, waiting for room");
        let deadline = self.conn.deadline();
        assert_eq!((self.conn.timer(), deadline), (Timer::Idle, self.now + TIMEOUTS.idle_ms));
        deadline
    }

    /// The deadline passes: returns whether the connection asked for a
    /// look at its client's unacknowledged bytes (and gives it `count`).
    fn look_at_deadline(&mut self, count: Option<u32>) -> bool {
        self.at_deadline();
        let asked = self.conn.take_reader_look();
        if asked {
            self.conn.handle_unacknowledged(count, &self.world.ctx());
        }
        asked
    }
}

#[test]
fn input_while_answers_wait_for_their_reader_moves_no_deadline_and_it_asks_the_kernel() {
    let mut h = Harness::new();
    let deadline = h.answer_waiting_for_its_reader();
    // It sends on: the start of a head, then whole requests, queued behind
    // the answer it does not read.
    for piece in [&b"GET / HT"[..], b"TP/1.1\r\nHost: a\r\n\r\n", GET, b"x"] {
        h.now += TIMEOUTS.idle_ms / 5;
        h.input(piece);
        assert_eq!(h.conn.deadline(), deadline, "input moved the deadline of answers nobody reads");
    }
    // The writer's deadline: the first look only sets the mark.
    assert!(h.look_at_deadline(Some(90_000)), "input came: the kernel is asked");
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms, "a patience more from the mark");
    h.now += TIMEOUTS.idle_ms / 5;
    h.input(b"x");
    // The next finds the same count: the client took nothing.
    assert!(h.look_at_deadline(Some(90_000)));
    assert!(h.conn.is_closed(), "a client that reads nothing is closed, however it sends");
}

#[test]
fn a_client_whose_kernel_takes_bytes_is_kept_without_a_send_completing() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(GET);
    // No send completes (a full socket's completes only once a third of it
    // is free), but the count moves at each look: it reads.
    for count in [900_000, 850_000, 870_000, 10] {
        assert!(h.look_at_deadline(Some(count)));
        assert!(!h.conn.is_closed(), "its client took bytes, down to {count}");
    }
    // Without more input too: its reading is what counts.
    assert!(h.look_at_deadline(Some(10)));
    assert!(h.conn.is_closed(), "then nothing in a patience");
}

#[test]
fn send_progress_makes_a_pending_look_moot_and_starts_the_watch_over() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(Some(5_000)), "the mark");
    h.now += 1;
    h.input(b"x");
    h.at_deadline();
    assert!(h.conn.take_reader_look(), "asked through the ring: the answer comes later");
    assert!(!h.conn.take_reader_look(), "once");
    // The rest of the answer goes out meanwhile (10 bytes of it).
    h.complete(b"0123456789", 10);
    let after_send = h.conn.deadline();
    assert_eq!(after_send, h.now + TIMEOUTS.idle_ms, "a send's progress moves it");
    h.conn.handle_unacknowledged(Some(5_000), &h.world.ctx());
    assert!(!h.conn.is_closed(), "the answer came after a send: moot");
    assert_eq!(h.conn.deadline(), after_send);
    // No input since the send: the deadline closes it, as before, unasked.
    assert!(!h.look_at_deadline(Some(5_000)), "no input during this clock: nothing asked");
    assert!(h.conn.is_closed());
}

#[test]
fn a_look_answered_after_the_last_answer_went_out_leaves_the_linger_alone() {
    let mut h = Harness::new();
    // Two reads before a send (a bundle's buffers): the second, a request
    // the server refuses, comes while the first's answer is owed.
    h.input(GET);
    h.input(BAD);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    let bytes = h.start_send().expect("both answers in one send");
    // The client reads nothing within the patience: asked through the ring.
    h.at_deadline();
    assert!(h.conn.take_reader_look());
    // Then it reads them all before the answer comes: the linger begins.
    h.complete(&bytes, bytes.len());
    assert_eq!(h.statuses(), [200, 400]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    let linger_ends = h.now + LINGER_MS;
    assert_eq!(h.conn.deadline(), linger_ends);
    h.conn.handle_unacknowledged(Some(1_000), &h.world.ctx());
    assert_eq!((h.conn.phase(), h.conn.deadline()), (Phase::Lingering, linger_ends), "the look is moot");
    // Nor does an unmoved count close it early (with a reset, its input unread).
    let mut unmoved = Harness::new();
    unmoved.input(GET);
    unmoved.input(BAD);
    let bytes = unmoved.start_send().expect("both answers in one send");
    assert!(unmoved.look_at_deadline(Some(1_000)), "the mark");
    unmoved.at_deadline();
    assert!(unmoved.conn.take_reader_look());
    unmoved.complete(&bytes, bytes.len());
    assert_eq!(unmoved.conn.phase(), Phase::Lingering);
    unmoved.conn.handle_unacknowledged(Some(1_000), &unmoved.world.ctx());
    assert_eq!(unmoved.conn.phase(), Phase::Lingering, "the look is moot");
}

#[test]
fn an_unanswered_look_closes_at_the_next_deadline_and_no_input_asks_nothing() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    h.at_deadline();
    assert!(h.conn.take_reader_look());
    assert!(!h.conn.is_closed(), "waiting for the answer");
    // No answer by the next deadline: closed, not asked again.
    assert!(!h.look_at_deadline(Some(1)));
    assert!(h.conn.is_closed());
    // A reader that sent nothing meanwhile: closed at the deadline, as before.
    let mut quiet = Harness::new();
    quiet.answer_waiting_for_its_reader();
    assert!(!quiet.look_at_deadline(Some(1)), "no ioctl for a connection that sent nothing");
    assert!(quiet.conn.is_closed());
}

#[test]
fn where_the_kernel_cannot_tell_input_since_the_last_look_keeps_it() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(None));
    assert!(!h.conn.is_closed(), "its input kept it, as before the kernel was asked");
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(None));
    assert!(!h.conn.is_closed());
    assert!(h.look_at_deadline(None));
    assert!(h.conn.is_closed(), "no input since the last look");
}

#[test]
fn a_closing_request_sent_while_answers_wait_keeps_the_writers_clock_and_its_look() {
    let mut h = Harness::new();
    let deadline = h.answer_waiting_for_its_reader();
    h.now += 1;
    // A pipelining reader's last request: the answers still owed go first.
    h.input(GET_CLOSE);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    assert_eq!(h.conn.deadline(), deadline, "its input moved nothing");
    assert!(h.look_at_deadline(Some(70_000)), "the mark");
    assert!(h.look_at_deadline(Some(60_000)), "asked again");
    assert!(!h.conn.is_closed(), "its client reads");
    assert!(h.look_at_deadline(Some(60_000)));
    assert!(h.conn.is_closed(), "then took nothing");
}

#[test]
fn a_body_begun_while_answers_are_owed_runs_its_own_timer() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Body, h.now + TIMEOUTS.body_ms));
}

#[test]
fn input_beyond_the_carry_waits_while_paused_and_is_taken_after_the_send() {
    let mut h = Harness::new();
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    assert_eq!(h.input(&burst), burst.len());
    assert_eq!(h.conn.phase(), Phase::Paused);
    let more = GET.repeat(CARRY / GET.len() * 2);
    let taken = h.input(&more);
    assert!(taken < more.len(), "the carry holds {CARRY} bytes, not {}", more.len());
    assert_eq!(h.conn.phase(), Phase::Paused, "waiting, not closed");
    let mut at = taken;
    while at < more.len() {
        h.flush();
        at += h.input(&more[at..]);
    }
    h.flush();
    assert_eq!(h.answered as usize, 40 + more.len() / GET.len());
}

#[test]
fn a_partial_send_goes_on_from_where_it_stopped() {
    let mut h = Harness::new();
    h.input(&[GET, GET].concat());
    let bytes = h.start_send().expect("send");
    h.complete(&bytes, 10);
    assert_eq!(h.answered, 0, "nothing answered until the send is whole");
    let rest = h.start_send().expect("the rest");
    assert_eq!(rest, bytes[10..]);
    h.complete(&rest, rest.len());
    assert_eq!(h.answered, 2);
    assert_eq!(h.sent, bytes);
}

#[test]
fn a_failed_send_closes() {
    let mut h = Harness::new();
    h.input(GET);
    h.start_send().expect("send");
    h.fail_send();
    assert!(h.conn.is_closed());
    assert!(h.start_send().is_none(), "nothing is sent on a closed connection");
}

#[test]
fn the_peer_closing_in_each_phase() {
    // Reading, idle: closed at once.
    let mut h = Harness::new();
    h.peer_closed();
    assert!(h.conn.is_closed());
    // Reading with an incomplete request: it can never complete.
    let mut h = Harness::new();
    h.input(b"GET / HT");
    h.peer_closed();
    assert!(h.conn.is_closed());
    // Reading with answers owed: they go out, then the close.
    let mut h = Harness::new();
    h.input(&[GET, GET].concat());
    h.peer_closed();
    assert!(!h.conn.is_closed());
    assert!(!h.conn.wants_read());
    h.flush();
    assert_eq!(h.answered, 2);
    assert!(h.conn.is_closed());
    // Finishing: no more lingering, closed after the reply.
    let mut h = Harness::new();
    h.input(BAD);
    h.peer_closed();
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    h.flush();
    assert!(h.conn.is_closed());
    assert!(!h.conn.take_half_close());
    // Paused: the held requests are still answered.
    let mut h = Harness::new();
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    h.input(&burst);
    h.peer_closed();
    h.flush();
    assert_eq!(h.answered, 40);
    assert!(h.conn.is_closed());
    // Closed: nothing happens.
    h.peer_closed();
    assert!(h.conn.is_closed());
}

#[test]
fn header_timeout_counts_from_the_first_byte_and_closes_silently() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.now += 5;
    h.input(b"GET / HTTP/1.1\r\n");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Header, h.now + TIMEOUTS.header_ms));
    let deadline = h.conn.deadline();
    h.now += 1_000;
    h.input(b"Host: a\r\n");
    assert_eq!(h.conn.deadline(), deadline, "a trickle does not move the header deadline");
    h.at_deadline();
    assert!(h.conn.is_closed());
    assert_eq!(h.statuses(), [200], "no answer to a timed-out header block");
}

#[test]
fn idle_timeout_closes_an_idle_connection() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    assert_eq!(h.conn.timer(), Timer::Idle);
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn a_slow_body_gets_408_and_the_body_deadline_grows_with_what_arrives() {
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    assert_eq!(h.conn.timer(), Timer::Body);
    let started = h.now;
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms);
    h.now += 1_000;
    h.input(&[b'x'; 2048]);
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms + 2_000, "2 KiB buy two seconds");
    // One byte a second buys nothing: the deadline does not move.
    for _ in 0..5 {
        h.now += 1_000;
        h.input(b"x");
    }
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms + 2_000);
    h.at_deadline();
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn a_body_that_arrives_in_time_is_answered_and_the_timer_goes_back_to_idle() {
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel");
    assert_eq!(h.conn.timer(), Timer::Body);
    h.input(b"lo");
    h.flush();
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.conn.timer(), Timer::Idle);
}

#[test]
fn draining_closes_after_the_last_answer_and_hurries_idle_connections() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.now += DRAIN_RECENT_MS;
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_GRACE_MS, "a connection idle a while gets a short grace");
    h.input(&[GET, GET].concat());
    assert!(h.start_send().is_none(), "the answers wait a moment for more input");
    // More comes within the moment: answered too, and the wait starts over.
    h.now += DRAIN_SETTLE_MS / 2;
    h.input(GET);
    assert!(h.start_send().is_none());
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 4);
    assert!(h.sent_text().ends_with("Connection: close\r\n\r\nhi\n"), "{}", h.sent_text());
    assert_eq!(h.sent_text().matches("Connection: close").count(), 1, "only the last answer closes");
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn draining_keeps_a_connection_used_a_moment_ago_for_its_next_request() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    let answered = h.now;
    h.now += DRAIN_GRACE_MS / 2;
    h.drain();
    assert_eq!(h.conn.deadline(), answered + DRAIN_RECENT_MS, "kept a while after its last answer");
    // Past the short grace, before that: the client's next request comes.
    h.now += DRAIN_GRACE_MS * 3;
    assert!(h.conn.deadline() > h.now, "not due at the short grace");
    h.input(GET);
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 2);
    assert!(h.sent_text().ends_with("Connection: close\r\n\r\nhi\n"), "{}", h.sent_text());
    assert_eq!(h.conn.phase(), Phase::Lingering);

    // One that stays quiet closes then, and no later.
    let mut quiet = Harness::new();
    quiet.input(GET);
    quiet.flush();
    let answered = quiet.now;
    quiet.drain();
    assert_eq!(quiet.conn.deadline(), answered + DRAIN_RECENT_MS);
}

#[test]
fn draining_waits_longer_for_a_first_request_than_for_a_next_one() {
    let mut h = Harness::new();
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_FIRST_REQUEST_GRACE_MS, "no request yet: the longer grace");
    h.now += DRAIN_GRACE_MS * 2;
    h.input(GET);
    assert!(h.conn.deadline() < now + DRAIN_FIRST_REQUEST_GRACE_MS, "then only the settle moment");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 1, "the first request, late, is answered");
    assert!(h.sent_text().contains("Connection: close"), "{}", h.sent_text());
}

#[test]
fn empty_lines_between_requests_begin_nothing() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    let deadline = h.conn.deadline();
    h.now += 10;
    // Alone, or after a request in the same input: ignored either way.
    assert_eq!(h.input(b"\r\n"), 2);
    assert!(h.conn.is_idle(), "a blank line is not a request begun");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Idle, deadline), "nor does it refresh the idle clock");
    h.input(&[GET, b"\r\n\n\r"].concat());
    h.flush();
    assert!(h.conn.is_idle());
    assert_eq!(h.statuses(), [200, 200]);
    // A `\r` left waiting for its `\n`, then the next request.
    h.input(&[b"\n", GET].concat());
    h.flush();
    assert_eq!(h.statuses(), [200, 200, 200]);
    // So a drain closes it after the short grace, not the header timeout.
    h.now += DRAIN_RECENT_MS;
    h.input(b"\r\n");
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_GRACE_MS);
    // A blank line inside a header block is still its end.
    let mut split = Harness::new();
    split.input(b"GET / HTTP/1.1\r\nHost: a\r\n");
    split.input(b"\r\n");
    split.flush();
    assert_eq!(split.statuses(), [200]);
}

/// Empty lines before a request line count toward no limit, wherever they
/// arrive: a head of `--max-header` bytes after them is served whether they
/// come in its read, in a read of their own or after a request; one a byte
/// longer is refused in every case. Until 2026-12-06 they counted in the
/// head's read only: `431` there, `200` when they came alone.
#[test]
fn empty_lines_before_a_head_count_toward_no_limit_wherever_they_arrive() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for (len, status) in [(8192, 200), (8193, 431)] {
            let head = head_of(len);
            for lead in [&b"\r\n"[..], b"\n", b"\r\n\n\r\n"] {
                let shown = String::from_utf8_lossy(lead);
                for (inputs, want) in [
                    (vec![[lead, &head].concat()], vec![status]),
                    (vec![lead.to_vec(), head.clone()], vec![status]),
                    (vec![[GET, lead, &head].concat()], vec![200, status]),
                    (vec![[GET, lead].concat(), head.clone()], vec![200, status]),
                ] {
                    let mut h = make();
                    for input in &inputs {
                        h.input(input);
                    }
                    h.flush();
                    let cuts: Vec<usize> = inputs.iter().map(Vec::len).collect();
                    assert_eq!(h.statuses(), want, "{len}-byte head after {shown:?}, reads of {cuts:?}");
                }
            }
        }
    }
}

/// The health path is told after empty lines, in the read that brings its
/// request or before it, first on the connection or after another request.
/// Until 2026-12-06, in the same read, its head began with the empty line,
/// not `GET `, and the handler (or the fixed page) answered it.
#[test]
fn the_health_path_is_told_after_empty_lines_wherever_they_arrive() {
    let probe = &b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"[..];
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for draining in [false, true] {
            for lead in [&b"\r\n"[..], b"\n", b"\r\n\r\n"] {
                for (inputs, answers) in [
                    (vec![[lead, probe].concat()], 1),
                    (vec![lead.to_vec(), probe.to_vec()], 1),
                    (vec![[GET, lead, probe].concat()], 2),
                    (vec![[GET, lead].concat(), probe.to_vec()], 2),
                ] {
                    let mut h = make();
                    if draining {
                        h.drain();
                    }
                    for input in &inputs {
                        h.input(input);
                    }
                    h.flush();
                    let text = h.sent_text();
                    let (status, body) = if draining { (503, "draining\n") } else { (200, "ready\n") };
                    let want: Vec<u16> = if answers == 2 { vec![200, status] } else { vec![status] };
                    let shown = String::from_utf8_lossy(lead);
                    assert_eq!(h.statuses(), want, "after {shown:?}, {} reads: {text}", inputs.len());
                    assert!(text.ends_with(body), "after {shown:?}, {} reads: {text}", inputs.len());
                    assert!(h.conn.is_closed());
                }
            }
        }
    }
}

/// A client that sends nothing but empty lines is cut off by the timer that
/// runs when they come: the header timer from the connection's start before
/// a first request, the idle timer from the last answer after one. They
/// move neither.
#[test]
fn a_client_sending_only_empty_lines_is_cut_off_by_the_timer_that_runs() {
    for answered_first in [false, true] {
        let mut h = Harness::new();
        if answered_first {
            h.input(GET);
            h.flush();
        }
        let (timer, deadline) = (h.conn.timer(), h.conn.deadline());
        let want = if answered_first {
            (Timer::Idle, h.now + TIMEOUTS.idle_ms)
        } else {
            (Timer::Header, h.now + TIMEOUTS.header_ms)
        };
        assert_eq!((timer, deadline), want);
        while h.now + 100 < deadline {
            h.now += 100;
            // Line ends cut anywhere, a `\r` and its `\n` in two reads among them.
            for lines in [&b"\r"[..], b"\n\r\n", b"\n\r", b"\n"] {
                assert_eq!(h.input(lines), lines.len());
            }
            assert_eq!((h.conn.timer(), h.conn.deadline()), (timer, deadline), "at {}", h.now);
        }
        h.at_deadline();
        assert!(h.conn.is_closed(), "answered first: {answered_first}");
        assert_eq!(h.conn.touched().0, 0, "nothing was carried");
    }
}

#[test]
fn a_head_after_dropped_empty_lines_is_parsed_from_its_own_start() {
    // The parser keeps how far it looked into an incomplete head; empty
    // lines it looked at and the connection dropped are no part of the
    // next read's head. Until the parser forgot them, a bad request line of
    // their length waited for more input.
    let mut h = Harness::new();
    h.input(&[GET, b"\r\n\r\n"].concat());
    h.input(b"BAD\n");
    h.flush();
    assert_eq!(h.statuses(), [200, 400]);
    // And a request that follows them is answered as ever.
    let mut h = Harness::new();
    h.input(&[GET, b"\r\n"].concat());
    h.input(b"G");
    h.input(&GET[1..]);
    h.flush();
    assert_eq!(h.statuses(), [200, 200]);
}

#[test]
fn a_closed_connection_ignores_everything() {
    let mut h = Harness::new();
    h.peer_closed();
    assert!(h.conn.is_closed());
    h.input(GET);
    h.at_deadline();
    assert!(h.conn.is_closed());
    assert!(h.start_send().is_none());
    assert!(!h.conn.wants_read());
}

/// Feeds `input` in pieces cut at `cuts`, sending whatever is due after each
/// piece, sometimes in part; returns what went out.
fn run_split(input: &[u8], rng: &mut Rng, whole: bool, make: fn() -> Harness) -> Vec<u8> {
    let mut h = make();
    let mut at = 0;
    while at < input.len() && !h.conn.is_closed() {
        let len = if whole { input.len() } else { 1 + rng.below(40) };
        let end = (at + len).min(input.len());
        if h.conn.wants_read() || h.conn.phase() == Phase::Paused {
            if h.conn.phase() == Phase::Paused {
                h.flush();
                continue;
            }
            at += h.input(&input[at..end]);
        }
        while let Some(bytes) = h.start_send() {
            let n = if whole { bytes.len() } else { 1 + rng.below(bytes.len()) };
            h.complete(&bytes, n);
        }
    }
    h.flush();
    h.sent
}

/// A `GET` head of `len` bytes (one filler field makes it up).
fn head_of(len: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: ".to_vec();
    head.resize(len - 4, b'v');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// Random request streams, each fed whole and in random pieces with random
/// partial sends, must give the same bytes out; and the same as the stream
/// without the empty lines it has before its requests now and then (RFC
/// 9112 §2.2: ignored, wherever they come), heads of `--max-header` bytes
/// and the health path among them.
fn splits_give_the_same_bytes(make: fn() -> Harness) {
    let at_the_limit = head_of(8192);
    let over_the_limit = head_of(8193);
    let pieces: [&[u8]; 8] = [
        GET,
        b"PUT /x HTTP/1.2\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        &at_the_limit,
    ];
    let endings: [&[u8]; 6] = [
        b"",
        GET_CLOSE,
        BAD,
        &over_the_limit,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    let empty_lines: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\n\r\n", b"\n\r\n"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let (mut stream, mut without_empty_lines) = (Vec::new(), Vec::new());
        let count = 1 + rng.below(30);
        for n in 0..=count {
            if rng.below(3) == 0 {
                stream.extend_from_slice(empty_lines[rng.below(empty_lines.len())]);
            }
            let piece = if n < count { pieces[rng.below(pieces.len())] } else { endings[rng.below(endings.len())] };
            stream.extend_from_slice(piece);
            without_empty_lines.extend_from_slice(piece);
        }
        let expected = run_split(&stream, &mut rng, true, make);
        let got = run_split(&stream, &mut rng, false, make);
        compare_outputs(round, "whole", &expected, "split", &got);
        let plain = run_split(&without_empty_lines, &mut rng, true, make);
        compare_outputs(round, "without empty lines", &plain, "with", &expected);
    }
}

fn compare_outputs(round: usize, expected_name: &str, expected: &[u8], got_name: &str, got: &[u8]) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
        let show = |v: &[u8]| String::from_utf8_lossy(&v[at.saturating_sub(200)..(at + 200).min(v.len())]).into_owned();
        panic!(
            "round {round}: output differs at byte {at} ({} vs {} bytes):\n{expected_name}: {}\n{got_name}: {}",
            expected.len(),
            got.len(),
            show(expected),
            show(got)
        );
    }
}

#[test]
fn any_split_of_the_input_and_the_sends_gives_the_same_bytes_out() {
    splits_give_the_same_bytes(Harness::new);
}

#[test]
fn any_split_gives_the_same_bytes_out_with_a_handler_too() {
    splits_give_the_same_bytes(|| Harness::with_handler(4, 256));
}

// --- answered by a handler -------------------------------------------------------------------

#[test]
fn a_handler_answers_and_pipelined_answers_share_one_send() {
    let mut h = Harness::with_handler(1, 256);
    h.input(&[GET, b"GET /b?x HTTP/1.1\r\nHost: a\r\n\r\n"].concat());
    let bytes = h.start_send().expect("a send");
    assert!(h.start_send().is_none());
    h.complete(&bytes, bytes.len());
    let text = h.sent_text();
    assert_eq!(h.statuses(), [200, 200]);
    assert!(text.contains("X-Path: /\r\nContent-Length: 4\r\n\r\nGET "), "{text}");
    assert!(text.ends_with("X-Path: /b\r\nContent-Length: 4\r\n\r\nGET "), "{text}");
    assert_eq!(h.answered, 2);
}

#[test]
fn draining_with_a_handler_closes_after_its_last_answer() {
    let mut h = Harness::with_handler(1, 256);
    h.input(GET);
    h.flush();
    h.drain();
    h.input(&[GET, b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n"].concat());
    assert!(h.start_send().is_none(), "the answers wait a moment for more input");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 3);
    let text = h.sent_text();
    assert!(text.ends_with("X-Path: /last\r\nContent-Length: 4\r\nConnection: close\r\n\r\nGET "), "{text}");
    assert_eq!(text.matches("Connection: close").count(), 1, "only the last answer closes: {text}");
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn draining_with_a_handler_closes_an_http10_keep_alive_client_too() {
    let mut h = Harness::with_handler(1, 256);
    h.drain();
    h.input(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 1);
    let text = h.sent_text();
    assert!(text.ends_with("X-Path: /old\r\nContent-Length: 4\r\nConnection: close\r\n\r\nGET "), "{text}");
    assert!(!text.contains("keep-alive"), "{text}");
}

#[test]
fn a_body_that_arrives_with_its_head_is_read_where_it_lies() {
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    h.flush();
    assert!(h.sent_text().ends_with("\r\n\r\nPOST hello"), "no body buffer was needed: {}", h.sent_text());
}

#[test]
fn a_body_in_pieces_is_gathered_and_a_chunked_one_decoded() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel");
    h.input(b"lo ");
    h.input(b"wo");
    assert!(h.start_send().is_none(), "not answered before the body is whole");
    h.input(b"rld");
    h.flush();
    assert!(h.sent_text().ends_with("POST hello world"), "{}", h.sent_text());
    h.input(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    h.flush();
    assert!(h.sent_text().ends_with("POST abcde"), "{}", h.sent_text());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "the buffer is back");
}

#[test]
fn no_body_buffer_free_is_503_and_a_close() {
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    h.flush();
    assert_eq!(h.statuses(), [503]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn a_response_too_large_for_the_handler_buffers_is_500() {
    let mut h = Harness::with_handler(1, 8);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    h.flush();
    assert_eq!(h.statuses(), [500]);
    assert_eq!(h.conn.phase(), Phase::Reading, "the connection goes on");
}

#[test]
fn a_full_output_buffer_pauses_until_it_is_sent() {
    let mut h = Harness::with_handler(1, 256);
    // Each answer may take up to the largest framed size: the buffer holds two.
    h.input(&GET.repeat(100));
    assert_eq!(h.conn.phase(), Phase::Paused);
    assert!(!h.conn.wants_read());
    h.flush();
    assert_eq!(h.answered, 100, "held requests are answered once the buffer drains");
    assert_eq!(h.conn.phase(), Phase::Reading);
}

#[test]
fn a_client_that_asks_to_close_gets_the_handler_answer_then_a_plain_close() {
    let mut h = Harness::with_handler(1, 256);
    h.input(GET_CLOSE);
    h.flush();
    assert!(h.sent_text().contains("Connection: close\r\n"), "{}", h.sent_text());
    assert!(h.conn.is_closed());
}

#[test]
fn closing_releases_a_gathered_body_buffer() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(0));
    h.conn.release(&mut h.world.ctx());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1));
}

/// A body too slow to finish ends its request: the buffer it was gathered
/// in is free again with the `408`, not only when the connection closes
/// after lingering (until 2026-12-07 a client still sending at its 408 kept
/// it for up to 30 s more, and others meanwhile met `503`s).
#[test]
fn a_408_gives_the_body_buffer_back() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(0));
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "the buffer is back");
    // The rest of the body, come late, is discarded: the buffer stays free.
    h.now += 100;
    h.input(b"lo world");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1));
    h.conn.release(&mut h.world.ctx());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "given back once");
}

#[test]
fn the_health_path_answers_ready_then_draining_ahead_of_any_handler() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 200 OK\r\n"), "{}", h.sent_text());
        assert!(h.sent_text().ends_with("Connection: close\r\n\r\nready\n"), "{}", h.sent_text());
        assert!(h.conn.is_closed());
        let mut h = make();
        h.drain();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{}", h.sent_text());
        assert!(h.sent_text().ends_with("draining\n"), "{}", h.sent_text());
        // Other paths are the handler's (or the fixed body's), a prefix is not the path.
        let mut h = make();
        h.input(b"GET /healthzz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(!h.sent_text().contains("ready\n"), "{}", h.sent_text());
    }
}

/// A probe of the health path with a body (`Content-Length`, or `chunked`,
/// empty or not) is the health path's too, answered once its body is
/// read, whether the body comes with the head or after it, the handler's
/// body buffers all taken or not. Until 2026-12-06 it was the handler's
/// (or the fixed body's), `200` from a draining worker as well.
#[test]
fn a_probe_of_the_health_path_with_a_body_is_the_health_paths() {
    let makes: [fn() -> Harness; 3] =
        [Harness::new, || Harness::with_handler(1, 256), || Harness::with_handler(0, 256)];
    let probes: [(&[u8], &[u8]); 4] = [
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", b"abc"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"0\r\n\r\n"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
        (b"GET http://a/healthz HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", b"abc"),
    ];
    for (which, make) in makes.iter().enumerate() {
        for (head, body) in probes {
            for draining in [false, true] {
                for split in [false, true] {
                    let shown = format!(
                        "harness {which}, {:?}, draining {draining}, split {split}",
                        String::from_utf8_lossy(head)
                    );
                    let mut h = make();
                    if draining {
                        h.drain();
                    }
                    if split {
                        h.input(head);
                        h.input(body);
                    } else {
                        h.input(&[head, body].concat());
                    }
                    h.flush();
                    let text = h.sent_text();
                    let (status, content) =
                        if draining { ("503 Service Unavailable", "draining\n") } else { ("200 OK", "ready\n") };
                    let text = text.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n").unwrap_or(&text);
                    assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{shown}: {text}");
                    assert!(text.ends_with(&format!("Connection: close\r\n\r\n{content}")), "{shown}: {text}");
                    assert!(h.conn.is_closed(), "{shown}");
                }
            }
        }
        // A HEAD of it with a body: the status, without the content.
        let mut h = make();
        h.drain();
        h.input(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        h.flush();
        let text = h.sent_text();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "harness {which}: {text}");
        assert!(text.ends_with("\r\n\r\n"), "harness {which}: {text}");
        // A body that is refused is answered as any refused body is.
        let mut h = make();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 400 Bad Request\r\n"), "harness {which}: {}", h.sent_text());
        // Another path with a body is still the handler's.
        let mut h = make();
        h.input(b"GET /healthzz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        h.flush();
        assert!(!h.sent_text().contains("ready\n"), "harness {which}: {}", h.sent_text());
    }
}

/// The health path is matched as a handler's route sees it: an
/// absolute-form target (RFC 9112 §3.2.2: a server MUST accept it) names it
/// as its origin-form does. Until 2026-12-05 only `/healthz` did: an
/// absolute-form probe got the handler's answer, `200` from a lame duck too.
#[test]
fn the_health_path_is_matched_in_absolute_form() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for target in ["http://example/healthz", "HTTPS://example:8080/healthz"] {
            for draining in [false, true] {
                let mut h = make();
                if draining {
                    h.drain();
                }
                h.input(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
                h.flush();
                let text = h.sent_text();
                let (status, body) =
                    if draining { ("503 Service Unavailable", "draining\n") } else { ("200 OK", "ready\n") };
                assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{target}: {text}");
                assert!(text.ends_with(body), "{target}: {text}");
            }
        }
        // Another path, or the path with a query the health path has not.
        for target in
            ["http://example/healthzz", "http://healthz", "http://example/a/healthz", "http://example/healthz?a"]
        {
            let mut h = make();
            h.input(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            h.flush();
            assert!(!h.sent_text().contains("ready\n"), "{target}: {}", h.sent_text());
        }
    }
}

#[test]
fn a_health_path_with_a_query_needs_that_query_in_either_form() {
    let check = |target: &str, health_path: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        super::health::is_health_check(Reply::Ok, head.as_bytes(), Some(health_path.as_bytes()))
    };
    assert!(check("/status?full", "/status?full"));
    assert!(check("http://a:80/status?full", "/status?full"));
    assert!(!check("/status", "/status?full"));
    assert!(!check("http://a/status", "/status?full"));
    assert!(!check("/status?fuller", "/status?full"));
    assert!(!check("/status?full", "/status"));
    assert!(check("http://a", "/"));
    assert!(check("http://a/", "/"));
    assert!(!check("http://a?x", "/"));
    // A fragment is no part of the path or the query, as a handler's
    // `path()` and `query()` see them (until 2026-12-07 `http://a#/status`
    // was a probe of `/status`, and `/status#x` was not). The parser now
    // refuses a target with one (400), which is never a probe.
    assert!(!check("http://a#/status", "/status"));
    assert!(check("/status#x", "/status"));
    assert!(check("/status?full#x", "/status?full"));
    assert!(!check("/status#?full", "/status?full"));
}

/// A `HEAD` of the health path gets the status a `GET` gets, ready or
/// draining, with the head alone (RFC 9110 §9.3.2), from the fixed pages
/// and ahead of a handler alike.
#[test]
fn a_head_of_the_health_path_gets_its_status_without_content() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for draining in [false, true] {
            let mut h = make();
            if draining {
                h.drain();
            }
            h.input(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            h.flush();
            let text = h.sent_text();
            let (status, length) = if draining { ("503 Service Unavailable", 9) } else { ("200 OK", 6) };
            assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{text}");
            assert!(text.contains(&format!("\r\nContent-Length: {length}\r\n")), "{text}");
            assert!(text.ends_with("Connection: close\r\n\r\n"), "content after a HEAD's answer: {text}");
            assert!(h.conn.is_closed());
        }
    }
}

/// Draining, input taken up from the carry after a pause is the end of
/// what the client sent as much as a read that empties the socket is: its
/// answers settle, and the last one closes the connection. (They went out at
/// once, all keep-alive, and the connection was cut once idle.)
#[test]
fn draining_input_taken_up_after_a_pause_settles_and_closes_with_its_last_answer() {
    // Past the run-length queue (alternating kinds), past a handler's output (two largest answers).
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let alternating: Vec<u8> = (0..41).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    settles_after_a_pause(Harness::new(), &alternating, 41, "Connection: close\r\n\r\nhi\n");
    settles_after_a_pause(Harness::with_handler(1, 256), &GET.repeat(100), 100, "Connection: close\r\n\r\nGET ");
}

/// Draining, `burst` (`requests` requests) pauses `h`; the answers queued
/// before the pause go out at once, those of the input taken up after it
/// settle, and the last, ending with `last`, closes.
fn settles_after_a_pause(mut h: Harness, burst: &[u8], requests: u32, last: &str) {
    h.input(GET);
    h.flush();
    h.drain();
    h.input(burst);
    assert_eq!(h.conn.phase(), Phase::Paused);
    while h.conn.phase() == Phase::Paused {
        let bytes = h.start_send().expect("the answers queued before the pause go out at once");
        h.complete(&bytes, bytes.len());
    }
    assert!(h.start_send().is_none(), "the answers of the input taken up wait a moment for more");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 1 + requests);
    let text = h.sent_text();
    assert!(text.ends_with(last), "{text}");
    assert_eq!(text.matches("Connection: close").count(), 1, "only the last answer closes: {text}");
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn a_drain_settling_keeps_its_deadline_when_a_send_completes() {
    let mut h = Harness::new();
    h.input(GET);
    let in_flight = h.start_send().expect("a send");
    h.drain();
    h.input(GET);
    let settle_at = h.now + DRAIN_SETTLE_MS;
    // The send in flight completes: the idle clock is refreshed, the settle's is not lost.
    h.complete(&in_flight, in_flight.len());
    assert!(h.conn.deadline() <= settle_at, "deadline {} after the settle at {settle_at}", h.conn.deadline());
    assert!(h.start_send().is_none(), "still settling");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 2);
    assert!(h.sent_text().ends_with("Connection: close\r\n\r\nhi\n"), "{}", h.sent_text());
}

#[test]
fn a_cr_alone_before_a_request_line_is_refused_however_the_input_is_cut() {
    // Whole, a CR not followed by LF before a request line is malformed (400).
    let mut whole = Harness::new();
    whole.input(&[GET, b"\r", GET].concat());
    whole.flush();
    assert_eq!(whole.statuses(), [200, 400]);
    // The same when a read ends with the CR, after a request or alone.
    let mut after = Harness::new();
    after.input(&[GET, b"\r"].concat());
    after.input(GET);
    after.flush();
    assert_eq!(after.statuses(), [200, 400], "CR at the end of a read after a request");
    let mut alone = Harness::new();
    alone.input(GET);
    alone.input(b"\r");
    alone.input(GET);
    alone.flush();
    assert_eq!(alone.statuses(), [200, 400], "CR alone in a read");
    let mut doubled = Harness::new();
    doubled.input(b"\r");
    doubled.input(&[b"\r\n", GET].concat());
    doubled.flush();
    assert_eq!(doubled.statuses(), [400], "CR, then CR LF");
    // Its LF in the next read makes it a blank line, ignored as before.
    let mut blank = Harness::new();
    blank.input(&[GET, b"\r"].concat());
    blank.flush();
    assert!(blank.conn.is_idle(), "a CR waiting for its LF is no request begun");
    blank.input(&[b"\n", GET].concat());
    blank.flush();
    assert_eq!(blank.statuses(), [200, 200]);
}

#[test]
fn errors_answering_a_head_request_carry_no_content() {
    // RFC 9110 §9.3.2: no content in any response to HEAD, errors included:
    // a client reads none, so its bytes would be taken for the next response.
    for (request, status) in [
        (&b"HEAD / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"[..], 417),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"HEAD / HTTP/1.1\r\n\r\n", 400),
        (b"\r\nHEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ] {
        for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
            let mut h = make();
            h.input(&[GET, request].concat());
            h.flush();
            let text = h.sent_text();
            assert_eq!(h.statuses(), [200, status], "{text:?}");
            let error = &text[text.rfind("HTTP/1.1 ").unwrap()..];
            assert!(error.ends_with("\r\n\r\n") && error.contains("Connection: close\r\n"), "{error:?}");
        }
    }
    // A body too slow to finish: 408, headers only too.
    let mut h = Harness::new();
    h.input(b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert!(h.sent_text().ends_with("\r\n\r\n"), "{:?}", h.sent_text());
    // The same errors for a GET keep their content.
    let mut h = Harness::new();
    h.input(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n");
    h.flush();
    assert!(h.sent_text().ends_with("\r\n\r\nExpectation Failed\n"), "{:?}", h.sent_text());
}

/// Feeds `input` cut in two at every position, with a request after it,
/// and returns the statuses each cut got, once sent (all of them when the
/// cuts agree; the test compares them to what it expects).
fn statuses_at_every_cut(input: &[u8], make: fn() -> Harness) -> Vec<(usize, Vec<u16>, Phase)> {
    let stream = [input, GET].concat();
    (1..stream.len())
        .map(|cut| {
            let mut h = make();
            h.input(&stream[..cut]);
            h.input(&stream[cut..]);
            h.flush();
            (cut, h.statuses(), h.conn.phase())
        })
        .collect()
}

#[test]
fn a_chunked_body_outside_the_grammar_is_400_however_the_input_is_cut() {
    // RFC 9112 §7.1, §7.1.1: whitespace after a size with no `;`, a `;` with
    // no name, a bare LF ending a trailer line or the body: 400 and a close.
    let head = &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..];
    for (framing, want) in [
        (&b"5 \r\nhello\r\n0\r\n\r\n"[..], &[400][..]),
        (b"5;\r\nhello\r\n0\r\n\r\n", &[400]),
        (b"5\r\nhello\r\n0\r\nX: 1\n\r\n", &[400]),
        (b"5\r\nhello\r\n0\r\n\n", &[400]),
        (b"5 ;name\r\nhello\r\n0;name=value;q=\"x y\"\r\nX: 1\r\n\r\n", &[200, 200]),
    ] {
        for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
            for (cut, statuses, phase) in statuses_at_every_cut(&[head, framing].concat(), make) {
                let shown = String::from_utf8_lossy(framing);
                assert_eq!(statuses, want, "{shown:?} cut at {cut}");
                if want == [400] {
                    assert_eq!(phase, Phase::Lingering, "{shown:?} cut at {cut}: an error closes");
                }
            }
        }
    }
}

#[test]
fn an_asterisk_target_is_for_options_only() {
    // RFC 9112 §3.2.4: `*` is OPTIONS' target; for another method it is
    // malformed (400, close), a HEAD's error without content.
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
        let mut h = make();
        h.input(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.input(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [200, 400], "{:?}", h.sent_text());
        assert_eq!(h.conn.phase(), Phase::Lingering);
        let mut h = make();
        h.input(b"HEAD * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [400]);
        assert!(h.sent_text().ends_with("\r\n\r\n"), "{:?}", h.sent_text());
        // Authority-form outside CONNECT: the same.
        let mut h = make();
        h.input(b"GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [400]);
    }
}

#[test]
fn a_body_timeout_408_and_a_503_for_a_body_are_counted_as_other_errors_are() {
    // Every final reply queued counts as a request parsed (the worker's
    // per-request work), errors included: a 400 ...
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    h.input(b"c");
    assert_eq!(h.conn.take_parsed(), 0, "a body on its way is no request yet");
    h.input(&[b"de", BAD].concat());
    h.flush();
    assert_eq!(h.statuses(), [200, 400]);
    assert_eq!((h.conn.take_parsed(), h.answered), (2, 2));
    // ... and the 408 of a body that stopped coming.
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    assert_eq!(h.conn.take_parsed(), 0);
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!((h.conn.take_parsed(), h.answered), (1, 1));
    // ... and the 503 of a body with no buffer free to gather it in.
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    h.flush();
    assert_eq!(h.statuses(), [503]);
    assert_eq!((h.conn.take_parsed(), h.answered), (1, 1));
}

/// A send the socket took only part of leaves no send in flight (on epoll
/// the rest waits for the socket to drain) and nothing queued, yet the rest
/// is owed: the client's FIN must not close the connection before it goes.
/// (It did: an epoll worker cut a large answer short when the client had
/// half-closed after its requests, the client seeing our FIN mid-body.)
#[test]
fn the_rest_of_a_partial_send_is_owed_after_the_clients_fin() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(GET);
        let bytes = h.start_send().expect("a send is due");
        h.complete(&bytes, 10);
        h.peer_closed();
        assert!(!h.conn.is_closed(), "closed with 10 of {} bytes sent", bytes.len());
        h.flush();
        assert_eq!(h.sent, bytes, "the whole answer");
        assert!(h.conn.is_closed(), "then the close");
    }
}

/// The same rest is no idle connection: a drain does not hurry it out (nor
/// may a full worker reclaim it). (A drain closed it a second in, an epoll
/// worker cutting off a slow reader's large answer at every stop and reload.)
#[test]
fn the_rest_of_a_partial_send_is_owed_through_a_drain() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(GET);
        let bytes = h.start_send().expect("a send is due");
        h.complete(&bytes, 10);
        let idle_deadline = h.conn.deadline();
        assert_eq!(idle_deadline, h.now + TIMEOUTS.idle_ms, "a slow reader has the idle timeout");
        assert!(!h.conn.is_idle() && !h.conn.is_reclaimable(), "the rest is owed");
        h.now += DRAIN_RECENT_MS;
        h.drain();
        assert_eq!(h.conn.deadline(), idle_deadline, "not hurried as an idle connection");
        h.flush();
        assert_eq!(h.sent, bytes, "the whole answer");
    }
}

/// Input that no answer follows asks for a watch of the socket (on io_uring
/// a reset behind it is reported by no send, and a multishot receive may
/// miss it); whole requests, which are answered, do not.
#[test]
fn input_no_answer_follows_needs_a_reset_watch() {
    let mut h = Harness::new();
    assert!(!h.conn.needs_reset_watch(), "nothing came");
    h.input(GET);
    h.flush();
    assert!(!h.conn.needs_reset_watch(), "a whole request: its answer's send sees a reset");
    h.input(b"\r\n\r\n");
    assert!(h.conn.needs_reset_watch(), "empty lines before a request line");

    let mut h = Harness::new();
    h.input(b"GET / HT");
    assert!(h.conn.needs_reset_watch(), "part of a request");

    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert!(!h.conn.needs_reset_watch(), "lingering, nothing more came");
    h.input(GET);
    assert!(h.conn.needs_reset_watch(), "input while lingering");
    h.peer_closed();
    assert!(!h.conn.needs_reset_watch(), "closed");
}

impl Harness {
    /// The deadline passes while the driver had no buffer to read with
    /// (io_uring: every receive buffer held by other connections): returns
    /// whether the connection started its timer over.
    fn at_deadline_unread(&mut self) -> bool {
        self.at_deadline_starved(false)
    }

    /// As [`Harness::at_deadline_unread`], and whether the connection's
    /// receive still `waits_for_buffer` (not armed again since).
    fn at_deadline_starved(&mut self, waits_for_buffer: bool) -> bool {
        self.now = self.conn.deadline();
        self.sync();
        self.conn.postpone_for_unread_input(&self.world.ctx(), waits_for_buffer)
    }
}

/// A timer that waits on the client's input starts over when its deadline
/// passes while the worker could not read (its receive found no buffer):
/// until 2026-12-07 the header timer closed such a connection, its request
/// unread and unanswered, while other connections held the ring.
#[test]
fn a_deadline_passed_with_no_buffer_to_read_with_starts_over() {
    let mut h = Harness::new();
    assert_eq!(h.conn.timer(), Timer::Header);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.header_ms);
    assert!(!h.conn.is_closed());
    // Its request comes once a buffer does, and is answered.
    h.input(GET);
    h.flush();
    assert_eq!(h.statuses(), [200]);
    // Idle between requests: the same.
    assert_eq!(h.conn.timer(), Timer::Idle);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms);
    // A body on its way: its clock runs from its start, which moves with
    // the wait, so the input that comes next does not find it run out.
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart");
    assert_eq!(h.conn.timer(), Timer::Body);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.body_ms);
    h.now += 1;
    h.input(b"more");
    assert!(h.conn.deadline() > h.now, "the body's clock ran out with its input: {}", h.conn.deadline());
}

/// Draining, a connection whose receive waits for a buffer now waits a
/// drain's grace at a time, and is answered once its request is read: until
/// 2026-12-07 the drain's hurried deadline closed it, its request unread.
/// One whose receive is armed again is hurried as any other.
#[test]
fn a_drain_waits_a_grace_at_a_time_for_a_receive_that_waits_for_a_buffer() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.drain();
    assert!(h.at_deadline_starved(true));
    assert_eq!(h.conn.deadline(), h.now + DRAIN_GRACE_MS);
    assert!(h.at_deadline_starved(true));
    // Its next request, read at last: answered once the drain's moment for
    // more input is over, and that answer closes.
    h.input(GET);
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 2);
    assert!(h.sent_text().ends_with("Connection: close\r\n\r\nhi\n"), "{}", h.sent_text());
    assert_eq!(h.conn.phase(), Phase::Lingering);
    // Armed again, nothing to read: the drain does not wait on it.
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.drain();
    assert!(!h.at_deadline_starved(false));
}

/// What does not wait on the client's input is judged as before: answers
/// owed (the writer's clock), a drain, a linger.
#[test]
fn answers_owed_a_drain_or_a_linger_do_not_start_over() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    assert!(!h.at_deadline_unread());
    let mut h = Harness::new();
    h.drain();
    assert!(!h.at_deadline_unread());
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.timer(), Timer::Linger);
    assert!(!h.at_deadline_unread());
}
