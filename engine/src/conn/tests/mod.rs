//! The connection state machine driven by hand: every event in every phase,
//! and any split of the input giving the same bytes out as the whole.

mod close;
mod drain;
mod empty_lines;
mod handler;
mod health;
mod reader_watch;
mod requests;
mod send;
mod splits;
mod timeouts;

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
/// How a closing answer from the preformatted pages ends.
const CLOSING_HI: &str = "Connection: close\r\n\r\nhi\n";
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

    /// The deadline ends a drain's moment for more input: what is due goes
    /// out, `answered` answers in all, the last ending with `last` (its
    /// `Connection: close`), and the connection lingers for the client's FIN.
    #[track_caller]
    fn settle_into_a_closing_answer(&mut self, answered: u32, last: &str) {
        self.at_deadline();
        self.flush();
        assert_eq!(self.answered, answered);
        let text = self.sent_text();
        assert!(text.ends_with(last), "{text}");
        assert_eq!(self.conn.phase(), Phase::Lingering);
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

/// A `GET` head of `len` bytes (one filler field makes it up).
fn head_of(len: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: ".to_vec();
    head.resize(len - 4, b'v');
    head.extend_from_slice(b"\r\n\r\n");
    head
}
