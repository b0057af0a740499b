//! A driver with no socket around one [`Connection`], for the fuzz targets
//! in `engine/fuzz/` (built only with the off-by-default `fuzzing` feature).
//!
//! It lends the connection what a worker lends it (carry and output
//! buffers, the preformatted replies, a handler), keeps input the connection
//! did not take and offers it again after a send (as the drivers do), and
//! hands out each send's bytes. It checks nothing itself: the fuzz targets
//! state the invariants.

use std::time::SystemTime;

use crate::answer::{BodyPool, ResponseScratch};
use crate::conn::lent::{gathered, lend, DynamicParts};
use crate::conn::{Connection, Context, Timeouts};
use crate::handler::{Handler, Request, Response};
use crate::http::Limits;
use crate::response::Responses;

/// The connection's timeouts under the simulation.
pub const TIMEOUTS: Timeouts = Timeouts { header_ms: 10_000, body_ms: 30_000, idle_ms: 60_000 };
/// The fixed body the preformatted replies carry.
pub const FIXED_BODY: &[u8] = b"hi\n";

/// A handler that answers each request with its body, exactly.
#[derive(Debug)]
pub struct EchoBody;

impl Handler for EchoBody {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        res.body(req.body());
    }
}

/// How the simulated worker is set up.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Answer with [`EchoBody`] rather than the preformatted pages.
    pub handler: bool,
    /// `--max-header`.
    pub max_header: usize,
    /// `--max-body`.
    pub max_body: u64,
    /// The carry buffer's size (the worker's is at least `max_header`).
    pub carry: usize,
    /// Body buffers of the handler's pool.
    pub body_buffers: usize,
}

/// One connection and the worker around it.
pub struct Sim {
    conn: Connection,
    carry: Vec<u8>,
    responses: Responses,
    dynamic: Option<DynamicParts<EchoBody>>,
    limits: Limits,
    /// The clock, in milliseconds.
    pub now: u64,
    /// The worker drains.
    pub draining: bool,
    /// Input the connection did not take yet (paused with its carry full).
    held: Vec<u8>,
    /// The bytes of the send in flight.
    in_flight: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("conn", &self.conn).field("held", &self.held.len()).finish_non_exhaustive()
    }
}

impl Sim {
    /// A connection just opened at `now` 1000.
    pub fn new(setup: Setup) -> Sim {
        let dynamic = setup.handler.then(|| {
            let max_response = usize::try_from(setup.max_body).unwrap_or(usize::MAX);
            let scratch = ResponseScratch::new(max_response).expect("a scratch");
            let out = vec![0; 2 * scratch.largest_framed()];
            let size = setup.max_header + max_response;
            DynamicParts {
                handler: EchoBody,
                scratch,
                bodies: BodyPool::new(setup.body_buffers, size).expect("a pool"),
                out,
            }
        });
        let mut conn = Connection::new();
        conn.open(1_000, &TIMEOUTS);
        Sim {
            conn,
            carry: vec![0; setup.carry.max(setup.max_header)],
            responses: Responses::new(FIXED_BODY, SystemTime::UNIX_EPOCH).expect("replies"),
            dynamic,
            limits: Limits { max_header: setup.max_header, max_body: setup.max_body },
            now: 1_000,
            draining: false,
            held: Vec::new(),
            in_flight: None,
        }
    }

    fn parts(&mut self) -> (&mut Connection, &mut [u8], Context<'_>) {
        let (answering, out) = lend(self.dynamic.as_mut());
        let ctx = Context {
            now: self.now,
            limits: self.limits,
            timeouts: TIMEOUTS,
            responses: &mut self.responses,
            draining: self.draining,
            answering,
            out,
            health_path: None,
            healthy: !self.draining,
        };
        (&mut self.conn, &mut self.carry, ctx)
    }

    /// Bytes received (`more_waiting`: the socket holds more); what the
    /// connection does not take now is held and offered again after a send.
    pub fn receive(&mut self, bytes: &[u8], more_waiting: bool) {
        self.held.extend_from_slice(bytes);
        self.offer_held(more_waiting);
    }

    fn offer_held(&mut self, more_waiting: bool) {
        if self.held.is_empty() || self.conn.is_closed() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let (conn, carry, mut ctx) = self.parts();
        let taken = conn.handle_input(&held, carry, more_waiting, &mut ctx);
        self.held = held[taken..].to_vec();
    }

    /// Input offered and not yet taken.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Starts the due send, if any: its bytes (kept until it completes).
    pub fn start_send(&mut self) -> Option<&[u8]> {
        if self.in_flight.is_some() {
            return None;
        }
        let (conn, _, mut ctx) = self.parts();
        let header = conn.poll_send(&mut ctx)?;
        // SAFETY: poll_send's header, its iovecs into the connection, the
        // pages and the output buffer, all alive and unchanged until the send
        // is handled.
        let bytes = unsafe { gathered(header) };
        self.in_flight = Some(bytes);
        self.in_flight.as_deref()
    }

    /// Completes the send in flight with its first `n` bytes taken (at
    /// most all): returns those bytes and the requests it finished answering;
    /// then offers held input again.
    pub fn complete_send(&mut self, n: usize) -> Option<(Vec<u8>, u32)> {
        let mut bytes = self.in_flight.take()?;
        bytes.truncate(n);
        let n = bytes.len();
        let (conn, carry, mut ctx) = self.parts();
        let answered = conn.handle_sent(n, carry, &mut ctx);
        self.offer_held(false);
        Some((bytes, answered))
    }

    /// The send in flight failed (a reset).
    pub fn fail_send(&mut self) {
        self.in_flight = None;
        let (conn, _, mut ctx) = self.parts();
        conn.handle_send_failed(&mut ctx);
    }

    /// The bytes of the send in flight (0: none).
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.as_ref().map_or(0, Vec::len)
    }

    /// A send is in flight.
    pub fn is_sending(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The client's FIN.
    pub fn peer_closed(&mut self) {
        let (conn, _, mut ctx) = self.parts();
        conn.handle_peer_closed(&mut ctx);
    }

    /// The clock moves to the connection's deadline, which it is handed.
    pub fn deadline_passes(&mut self) {
        self.now = self.now.max(self.conn.deadline());
        let (conn, _, mut ctx) = self.parts();
        conn.handle_timeout(&mut ctx);
    }

    /// The clock moves to the connection's deadline while its receive finds
    /// no buffer in the ring (paused connections hold them all): a timer
    /// that waits on input starts over, as the io_uring driver's tick does;
    /// anything else is handled as [`Sim::deadline_passes`] handles it.
    /// Whether it started over.
    /// `waits_for_buffer`: its receive waits for one now (not armed again yet).
    pub fn deadline_passes_starved(&mut self, waits_for_buffer: bool) -> bool {
        self.now = self.now.max(self.conn.deadline());
        let (conn, _, mut ctx) = self.parts();
        if conn.postpone_for_unread_input(&ctx, waits_for_buffer) {
            return true;
        }
        conn.handle_timeout(&mut ctx);
        false
    }

    /// The clock moves on by `ms` (no deadline handled).
    pub fn wait(&mut self, ms: u64) {
        self.now = (self.now + ms).min(self.conn.deadline().max(self.now));
    }

    /// The worker begins to drain.
    pub fn drain(&mut self) {
        self.draining = true;
        let (conn, _, ctx) = self.parts();
        conn.handle_drain(&ctx);
    }

    /// Answers the reader look, if one is due: `unacknowledged` is what the kernel says.
    pub fn reader_look(&mut self, unacknowledged: Option<u32>) {
        if self.conn.take_reader_look() {
            let (conn, _, ctx) = self.parts();
            conn.handle_unacknowledged(unacknowledged, &ctx);
        }
    }

    /// The driver should read.
    pub fn wants_read(&self) -> bool {
        self.conn.wants_read()
    }

    /// Our FIN is due (true once).
    pub fn take_half_close(&mut self) -> bool {
        self.conn.take_half_close()
    }

    /// Over.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Requests parsed since the last call.
    pub fn take_parsed(&mut self) -> u32 {
        self.conn.take_parsed()
    }

    /// Nothing in progress.
    pub fn is_idle(&self) -> bool {
        self.conn.is_idle()
    }

    /// The connection's deadline.
    pub fn deadline(&self) -> u64 {
        self.conn.deadline()
    }

    /// Frees the slot (what a driver does once it closed the socket).
    pub fn release(&mut self) {
        let (conn, _, mut ctx) = self.parts();
        conn.release(&mut ctx);
    }
}
