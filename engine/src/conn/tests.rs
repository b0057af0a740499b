//! The connection state machine driven by hand: every event in every phase,
//! and any split of the input giving the same bytes out as the whole.

use std::time::SystemTime;

use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
const BAD: &[u8] = b"NOT A REQUEST\r\n\r\n";
const TIMEOUTS: Timeouts = Timeouts { header_ms: 10_000, body_ms: 30_000, idle_ms: 60_000 };
const CARRY: usize = 8192;

/// A connection with everything a driver would give it, and a fake socket.
struct Harness {
    conn: Connection,
    carry: Vec<u8>,
    responses: Responses,
    now: u64,
    draining: bool,
    /// Bytes "sent" so far.
    out: Vec<u8>,
    answered: u32,
}

impl Harness {
    fn new() -> Harness {
        let mut conn = Connection::new();
        conn.open(1_000, &TIMEOUTS);
        Harness {
            conn,
            carry: vec![0; CARRY],
            responses: Responses::new(b"hi\n", SystemTime::UNIX_EPOCH),
            now: 1_000,
            draining: false,
            out: Vec::new(),
            answered: 0,
        }
    }

    fn ctx(&mut self) -> Context<'_> {
        Context {
            now: self.now,
            limits: Limits { max_header: 8192, max_body: 1 << 20 },
            timeouts: TIMEOUTS,
            responses: &mut self.responses,
            draining: self.draining,
        }
    }

    fn input(&mut self, bytes: &[u8]) {
        let mut carry = std::mem::take(&mut self.carry);
        let mut conn = std::mem::take(&mut self.conn);
        conn.handle_input(bytes, &mut carry, false, &mut self.ctx());
        self.conn = conn;
        self.carry = carry;
    }

    /// Starts the due send, if any; returns its bytes without completing it.
    fn start_send(&mut self) -> Option<Vec<u8>> {
        let header = self.conn.poll_send(&mut self.responses)?;
        let mut bytes = Vec::new();
        // SAFETY: the header and its iovecs point into the connection and the
        // response pages, both alive and unchanged until the send is handled.
        unsafe {
            let header = &*header;
            for i in 0..header.msg_iovlen {
                let iov = &*header.msg_iov.add(i);
                bytes.extend_from_slice(std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len));
            }
        }
        Some(bytes)
    }

    /// Completes a started send with `n` bytes taken by the kernel.
    fn complete(&mut self, bytes: &[u8], n: usize) {
        self.out.extend_from_slice(&bytes[..n]);
        let mut carry = std::mem::take(&mut self.carry);
        let mut conn = std::mem::take(&mut self.conn);
        self.answered += conn.handle_sent(n, &mut carry, &mut self.ctx());
        self.conn = conn;
        self.carry = carry;
    }

    /// Sends everything that is due, whole.
    fn flush(&mut self) {
        while let Some(bytes) = self.start_send() {
            self.complete(&bytes, bytes.len());
        }
    }

    fn peer_closed(&mut self) {
        let mut conn = std::mem::take(&mut self.conn);
        conn.handle_peer_closed(&mut self.ctx());
        self.conn = conn;
    }

    fn at_deadline(&mut self) {
        self.now = self.conn.deadline();
        let mut conn = std::mem::take(&mut self.conn);
        conn.handle_timeout(&mut self.ctx());
        self.conn = conn;
    }

    fn out_text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    fn statuses(&self) -> Vec<u16> {
        let text = self.out_text();
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

#[test]
fn held_input_that_overflows_the_carry_closes() {
    let mut h = Harness::new();
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    h.input(&burst);
    assert_eq!(h.conn.phase(), Phase::Paused);
    h.input(&vec![b'x'; CARRY * 2]);
    assert!(h.conn.is_closed());
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
    assert_eq!(h.out, bytes);
}

#[test]
fn a_failed_send_closes() {
    let mut h = Harness::new();
    h.input(GET);
    h.start_send().expect("send");
    let mut conn = std::mem::take(&mut h.conn);
    conn.handle_send_failed(&mut h.ctx());
    h.conn = conn;
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
    h.draining = true;
    let now = h.now;
    let mut conn = std::mem::take(&mut h.conn);
    conn.handle_drain(&h.ctx());
    h.conn = conn;
    assert_eq!(h.conn.deadline(), now + DRAIN_GRACE_MS, "an idle connection gets a short grace");
    h.input(&[GET, GET].concat());
    h.flush();
    assert_eq!(h.answered, 3);
    assert!(h.out_text().ends_with("Connection: close\r\n\r\nhi\n"), "{}", h.out_text());
    assert_eq!(h.conn.phase(), Phase::Lingering);
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

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// Feeds `input` in pieces cut at `cuts`, sending whatever is due after each
/// piece, sometimes in part; returns what went out.
fn run_split(input: &[u8], rng: &mut Rng, whole: bool) -> Vec<u8> {
    let mut h = Harness::new();
    let mut at = 0;
    while at < input.len() && !h.conn.is_closed() {
        let len = if whole { input.len() } else { 1 + rng.below(40) };
        let end = (at + len).min(input.len());
        if h.conn.wants_read() || h.conn.phase() == Phase::Paused {
            if h.conn.phase() == Phase::Paused {
                h.flush();
                continue;
            }
            h.input(&input[at..end]);
            at = end;
        }
        while let Some(bytes) = h.start_send() {
            let n = if whole { bytes.len() } else { 1 + rng.below(bytes.len()) };
            h.complete(&bytes, n);
        }
    }
    h.flush();
    h.out
}

#[test]
fn any_split_of_the_input_and_the_sends_gives_the_same_bytes_out() {
    let pieces: [&[u8]; 6] = [
        GET,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    ];
    let endings: [&[u8]; 3] = [b"", GET_CLOSE, BAD];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(30) {
            stream.extend_from_slice(pieces[rng.below(pieces.len())]);
        }
        stream.extend_from_slice(endings[rng.below(endings.len())]);
        let expected = run_split(&stream, &mut rng, true);
        let got = run_split(&stream, &mut rng, false);
        assert!(got == expected, "round {round}: split output differs for {:?}", String::from_utf8_lossy(&stream));
    }
}
