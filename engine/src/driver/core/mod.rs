//! What both drivers keep besides their connections and their kernel
//! interface: the preformatted replies, the carry and output buffers, the
//! counters, draining, the injected faults, and the master's channel
//! (batches in, acks out).
//!
//! This file: the state, a slot's buffers and context, the loop turn,
//! draining, a connection opened; `batches.rs`: the master's batches taken
//! and acknowledged; `capacity.rs`: what the worker can hold (the open-file
//! limit, idle connections reclaimed).

mod batches;
mod capacity;
mod sized_by;

use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use self::sized_by::{header_buffers_text, slots_text};
use super::idle::IdleList;
use super::late_closes::LateCloses;
use super::{Origin, Sources, CARRY_MIN};
use crate::answer::{Answering, BodyPool, Dynamic, ResponseScratch, FIELDS as RESPONSE_FIELDS};
use crate::channel::{Acks, Message};
use crate::config::EngineConfig;
use crate::conn::{Connection, Context, OutBuf, Timeouts};
use crate::handler::Handler;
use crate::http::Limits;
use crate::lazy_bytes::LazyBytes;
use crate::refused::reservation_refused as cannot_reserve;
use crate::response::{Responses, BODY_APART, MAX_RUN, PAGES};
use crate::stats::{CountersSnapshot, WorkerCounters, STATE_DRAINING, STATE_READY, STATE_STOPPED};
use crate::sys::now_ms;

pub(super) use self::batches::Batch;

/// What both drivers keep besides their connections and their kernel interface.
pub(super) struct Core<'a> {
    pub(super) config: &'a EngineConfig,
    pub(super) sources: Sources,
    pub(super) handler: &'a mut dyn Handler,
    /// The handler has a fixed body: answer from the preformatted pages.
    pub(super) fixed: bool,
    /// The handler asked for its clients' addresses
    /// ([`Handler::wants_peer_addr`], read once here): `peers` holds each
    /// slot's, read when its connection was taken. Empty otherwise, and no
    /// connection costs a system call or a byte for it.
    wants_peers: bool,
    peers: Box<[Option<SocketAddr>]>,
    pub(super) scratch: ResponseScratch,
    pub(super) bodies: BodyPool,
    /// Per-slot output buffers for the handler's framed responses: slot `i`
    /// owns `out[i * out_cap..(i + 1) * out_cap]` (empty with a fixed body).
    pub(super) out: LazyBytes,
    pub(super) out_cap: usize,
    pub(super) responses: Responses,
    pub(super) limits: Limits,
    pub(super) timeouts: Timeouts,
    /// Per-slot room for an incomplete header block: slot `i` owns
    /// `carry[i * carry_cap..(i + 1) * carry_cap]`.
    pub(super) carry: LazyBytes,
    pub(super) carry_cap: usize,
    pub(super) counters: &'a WorkerCounters,
    pub(super) counts: CountersSnapshot,
    /// Connection slots, each with its buffers: `--max-conns`, or the
    /// open-file limit at start when lower (see [`crate::reach`]).
    slots: usize,
    /// The open-file limit at start, if it could be read.
    fd_limit: Option<u64>,
    /// Connections the worker can hold while descriptors last: its slots,
    /// or fewer (its ring's table of direct descriptors, or what its
    /// process's descriptors allow).
    capacity: u64,
    /// The worker is full at a capacity its open-file limit made smaller
    /// than `--max-conns` (counted once per filling).
    full_at_fd_limit: bool,
    /// At the open-file limit: an accept found no descriptor free with this
    /// many connections open. The published capacity drops to it, so the
    /// master sees the worker full (in `shared` mode it then answers `503`
    /// itself instead of leaving clients in the queue).
    fd_capped: Option<u64>,
    pub(super) inbox: Box<Message>,
    /// Acks of the batches taken this loop turn, published together at its end.
    pub(super) acks: Acks,
    /// Batches settled so far: the number of the next one to publish.
    acks_settled: u64,
    /// The connections of the batch being adopted (slot, generation),
    /// served only once its ack is published (see `handed::take_message`).
    pub(super) handed_now: Vec<(u32, u32)>,
    /// Handed-over connections closing late (see [`LateCloses`]).
    pub(super) late_closes: LateCloses,
    /// Idle keep-alive connections, longest idle first: a full worker
    /// closes the oldest to make room (see [`IdleList`]).
    pub(super) idle: IdleList,
    /// Full with idle connections, it saw connections waiting on its
    /// listener at the last tick.
    full_queue_at_tick: bool,
    /// The master's channel is still open: a draining worker waits for its end
    /// of stream, so connections the master sent before `Drain` are all served.
    pub(super) channel_open: bool,
    pub(super) draining: bool,
    pub(super) drain_deadline: u64,
    pub(super) now: u64,
    /// When the last tick ran, and the last that judged deadlines (see
    /// [`Core::deadlines_due`]).
    last_tick: u64,
    last_judged: u64,
    /// When the injected stall begins, until it has happened.
    pub(super) stall_at: Option<u64>,
}

/// Ticks further apart than this: the loop stood still between them.
const STOOD_STILL_MS: u64 = 3 * super::TICK.as_millis() as u64;
/// The longest ticks leave deadlines to the next after stands-still in a row.
const DEADLINES_DEFERRED_MS: u64 = 10_000;

/// `slots` buffers of `each` bytes in one reservation.
fn reserve(slots: usize, each: usize) -> io::Result<LazyBytes> {
    let len = slots.checked_mul(each).ok_or_else(|| io::Error::other("the size overflows"))?;
    LazyBytes::new(len)
}

/// A fixed body as the worker got it for its preformatted replies.
enum FixedBodyBytes {
    /// The handler's own buffer ([`Handler::shared_fixed_body`]), kept without a copy.
    Shared(Arc<[u8]>),
    /// A copy of what [`Handler::fixed_body`] returned.
    Copied(Vec<u8>),
}

impl<'a> Core<'a> {
    pub(super) fn new(
        config: &'a EngineConfig,
        sources: Sources,
        counters: &'a WorkerCounters,
        handler: &'a mut dyn Handler,
    ) -> io::Result<Core<'a>> {
        // Room for an incomplete header block, and for input held while a
        // connection waits for its replies to go out.
        let carry_cap = config.max_header.max(CARRY_MIN);
        // Never more connections than descriptors: what the worker reserves
        // per connection is sized by what it can reach, not by a
        // `--max-conns` its open-file limit keeps it from (a raised limit
        // counts for the workers started after it).
        let fd_limit = crate::sys::fd_limit().ok();
        let slots = crate::reach::slots_within(config.max_conns, fd_limit);
        // The body is copied for the preformatted replies, unless the handler
        // shares its own buffer (then a long body is held once).
        let fixed_body = handler.fixed_body().map(|body| match handler.shared_fixed_body() {
            Some(shared) => FixedBodyBytes::Shared(shared),
            None => FixedBodyBytes::Copied(body.to_vec()),
        });
        let fixed = fixed_body.is_some();
        // A fixed body never reaches `handle`, where the address would be read.
        let wants_peers = !fixed && handler.wants_peer_addr();
        let max_response = if fixed { 0 } else { config.max_response };
        let scratch = ResponseScratch::new(max_response).map_err(|e| {
            cannot_reserve(e, "response buffer", format_args!("--max-response {max_response} + {RESPONSE_FIELDS}"))
        })?;
        // Reserved, not allocated: only the buffers used get pages (see `LazyBytes`).
        let (bodies, out_cap, out) = if fixed {
            (BodyPool::new(0, 0)?, 0, LazyBytes::new(0)?)
        } else {
            // Room for two of the largest responses: pipelined answers go out together.
            let out_cap = 2 * scratch.largest_framed();
            let out = reserve(slots, out_cap).map_err(|e| {
                cannot_reserve(
                    e,
                    "output buffers",
                    format_args!(
                        "{} x 2 x (--max-response {} + framing)",
                        slots_text(config.max_conns, slots),
                        config.max_response
                    ),
                )
            })?;
            let body_size = config.max_header.saturating_add(usize::try_from(config.max_body).unwrap_or(usize::MAX));
            let bodies = BodyPool::new(config.body_buffers, body_size).map_err(|e| {
                cannot_reserve(
                    e,
                    "request body buffers",
                    format_args!(
                        "--body-buffers {} x (--max-header {} + --max-body {})",
                        config.body_buffers, config.max_header, config.max_body
                    ),
                )
            })?;
            (bodies, out_cap, out)
        };
        let carry = reserve(slots, carry_cap).map_err(|e| {
            cannot_reserve(
                e,
                "header buffers",
                format_args!(
                    "{}",
                    header_buffers_text(&slots_text(config.max_conns, slots), config.max_header, carry_cap)
                ),
            )
        })?;
        // Each slot's client, for a handler that asks (none otherwise).
        let peers = crate::fallible::filled(if wants_peers { slots } else { 0 }, None).map_err(|e| {
            cannot_reserve(
                e,
                "client addresses",
                format_args!("{} x {}", slots_text(config.max_conns, slots), size_of::<Option<SocketAddr>>()),
            )
        })?;
        let idle = IdleList::new(slots).map_err(|e| {
            cannot_reserve(
                e,
                "idle list",
                format_args!("{} x {}", slots_text(config.max_conns, slots), IdleList::BYTES_PER_SLOT),
            )
        })?;
        // Its last reservation here: what below no limit sizes aborts the
        // worker if refused, so room for it is checked first (the replies,
        // which grow with the body, are made with an error instead).
        crate::refused::keep_headroom("idle list")?;
        let inbox = Message::new();
        let handed_now = Vec::with_capacity(crate::channel::MAX_FDS);
        let late_closes = LateCloses::new();
        let (responses, len) = match fixed_body {
            Some(FixedBodyBytes::Shared(body)) => {
                (Responses::sharing(Arc::clone(&body), SystemTime::now()), body.len())
            }
            Some(FixedBodyBytes::Copied(body)) => (Responses::new(&body, SystemTime::now()), body.len()),
            None => (Responses::new(b"", SystemTime::now()), 0),
        };
        let responses = responses.map_err(|e| {
            let laid_out = if len > BODY_APART {
                "each reply's head, and a fixed body held once,"
            } else {
                "each reply, around a fixed body"
            };
            let sized_by = format_args!("{PAGES} pages x up to {MAX_RUN} copies of {laid_out} of {len}");
            cannot_reserve(e, "preformatted replies", sized_by)
        })?;
        let mut counts = counters.snapshot();
        counts.live = 0;
        counts.capacity = slots as u64;
        // Before the worker is ready: the master never judges it by a capacity left from another process.
        counters.capacity.store(counts.capacity, std::sync::atomic::Ordering::Relaxed);
        counters.pid.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        let millis = |d: Duration| d.as_millis() as u64;
        Ok(Core {
            config,
            channel_open: sources.channel.is_some(),
            sources,
            handler,
            fixed,
            wants_peers,
            peers,
            scratch,
            bodies,
            out,
            out_cap,
            responses,
            limits: config.limits(),
            timeouts: Timeouts {
                header_ms: millis(config.header_timeout),
                body_ms: millis(config.body_timeout),
                idle_ms: millis(config.idle_timeout),
            },
            carry,
            carry_cap,
            counters,
            slots,
            fd_limit,
            capacity: counts.capacity,
            full_at_fd_limit: false,
            fd_capped: None,
            counts,
            inbox,
            acks: Acks::new(),
            acks_settled: counters.acks.settled(),
            handed_now,
            late_closes,
            idle,
            full_queue_at_tick: false,
            draining: false,
            drain_deadline: 0,
            now: now_ms(),
            last_tick: now_ms(),
            last_judged: now_ms(),
            stall_at: None,
        })
    }

    /// Called by each tick: whether it may close connections whose deadline
    /// has passed. Not the first tick after the loop stood still (a handler
    /// that blocked, a stopped or starved process): what clients sent
    /// meanwhile is not read yet, and a request that came in time would be
    /// taken for a silence (until 2026-12-06 a keep-alive client's next
    /// request, or the end of a head, sent in time while another
    /// connection's handler blocked the worker past that deadline, got a
    /// close and no answer, on both backends). The loop reads first; the
    /// next tick judges. At most [`DEADLINES_DEFERRED_MS`] in a row: a loop
    /// that stands still between every tick (a handler slow on every
    /// request, a starved machine) still times its connections out.
    pub(super) fn deadlines_due(&mut self) -> bool {
        let since = self.now.saturating_sub(self.last_tick);
        self.last_tick = self.now;
        let due = since < STOOD_STILL_MS || self.now.saturating_sub(self.last_judged) >= DEADLINES_DEFERRED_MS;
        if due {
            self.last_judged = self.now;
        }
        due
    }

    /// The error for `what`, `each` bytes for each connection the worker can
    /// hold, refused with `e`: it names the limit that sized it.
    pub(super) fn refused_per_connection(&self, e: io::Error, what: &str, each: usize) -> io::Error {
        cannot_reserve(e, what, format_args!("{} x {each}", slots_text(self.config.max_conns, self.capacity())))
    }

    /// Slot `slot`'s carry buffer and the context its connection's handlers take.
    pub(super) fn parts(&mut self, slot: u32) -> (&mut [u8], Context<'_>) {
        let base = slot as usize * self.carry_cap;
        let carry = &mut self.carry[base..base + self.carry_cap];
        let out_base = slot as usize * self.out_cap;
        let answering = if self.fixed {
            Answering::Fixed
        } else {
            Answering::Dynamic(Dynamic {
                handler: &mut *self.handler,
                scratch: &mut self.scratch,
                bodies: &mut self.bodies,
                peer: self.peers.get(slot as usize).copied().flatten(),
            })
        };
        assert!(out_base + self.out_cap <= self.out.len(), "slot {slot} is past the output buffers");
        // SAFETY: the slot's output buffer, inside the mapping (checked),
        // which lives as long as `self`, borrowed for the context's life; no
        // reference into it is made elsewhere: a send in flight from it reads
        // through slices an earlier context's `OutBuf` gave.
        let out = unsafe { OutBuf::from_raw(self.out.as_mut_ptr().add(out_base), self.out_cap) };
        let context = Context {
            now: self.now,
            limits: self.limits,
            timeouts: self.timeouts,
            responses: &mut self.responses,
            draining: self.draining,
            answering,
            out,
            health_path: self.config.health_path.as_deref().map(str::as_bytes),
            healthy: !self.draining && !self.counters.is_lame_duck(),
        };
        (carry, context)
    }

    /// Frees slot `slot`'s connection `conn` (what it holds goes back, see
    /// [`Connection::release`]), and the pages of the slot's buffers that a
    /// large exchange touched (see [`LazyBytes::release_touched`]: none, and
    /// no system call, for the small ones). The drivers call it only once no
    /// send from the slot's output buffer is in flight.
    pub(super) fn release_slot(&mut self, slot: u32, conn: &mut Connection) {
        let (_, mut ctx) = self.parts(slot);
        conn.release(&mut ctx);
        let (carry, out) = conn.touched();
        let base = slot as usize * self.carry_cap;
        self.carry.release_touched(base..base + self.carry_cap, carry);
        let base = slot as usize * self.out_cap;
        self.out.release_touched(base..base + self.out_cap, out);
    }

    pub(super) fn ready(&mut self) {
        self.counters.set_state(STATE_READY);
        // Its loop runs from here: a connection that waits on it before its
        // first wake-up is not waiting on a stalled worker.
        if let Some(tally) = &self.sources.accept_tally {
            tally.turned_now();
        }
        if let Some((after, _)) = self.config.faults.stall {
            self.stall_at = Some(self.now + after.as_millis() as u64);
        }
    }

    /// The start of a loop turn, `live` connections open: the counters are
    /// published (the heartbeat moves) and an injected stall runs when due.
    /// False when the loop should end instead: drained, or out of time to.
    pub(super) fn begin_turn(&mut self, live: usize) -> bool {
        self.publish(live);
        if self.finished(live) {
            return false;
        }
        self.stall_if_due();
        true
    }

    /// Injected faults: the one-time stall, when due (called once per loop turn).
    fn stall_if_due(&mut self) {
        let Some((at, (_, stall))) = self.stall_at.zip(self.config.faults.stall) else { return };
        if self.now >= at {
            self.stall_at = None;
            std::thread::sleep(stall);
            self.now = now_ms();
        }
    }

    /// After a connection's input was answered (`requests` of them):
    /// injected faults spend the time a slow handler would, and where a
    /// handler (or that fault) ran the clock moves on, so that what the
    /// connection does next is timed from now, not from when the loop woke.
    /// Until 2026-12-06 a keep-alive connection whose own answer took the
    /// handler longer than `--idle-timeout` had its idle clock counted from
    /// before the handler ran: on epoll it was closed at the next tick,
    /// 0-100 ms after its answer, and a next request sent within the idle
    /// timeout got no answer. (A coarse clock read, a few ns, per read
    /// that the handler answered.)
    pub(super) fn work_for(&mut self, requests: u32) {
        if requests == 0 {
            return;
        }
        if let Some(per_request) = self.config.faults.per_request {
            let until = std::time::Instant::now() + per_request * requests;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            self.now = now_ms();
        } else if !self.fixed {
            self.now = now_ms();
        }
    }

    /// Publishes the counters once per loop turn (the heartbeat moves).
    fn publish(&mut self, live: usize) {
        self.idle.advance(self.now);
        self.counts.capacity = self.capacity_now();
        self.counts.live = live as u64;
        self.counts.reclaimable = self.reclaimable() as u64;
        self.counts.handler_panics = self.scratch.panics();
        self.counts.heartbeat += 1;
        self.counters.store(&self.counts);
    }

    /// The loop woke from its wait: the clock moves, and the accept tally
    /// notes that the loop turns (else a worker woken by a connection after
    /// a long wait would seem stalled until the end of its turn).
    pub(super) fn woke(&mut self) {
        self.now = now_ms();
        if let Some(tally) = &self.sources.accept_tally {
            tally.turned_now();
        }
    }

    /// True when the loop should end: drained, or out of time to.
    fn finished(&self, live: usize) -> bool {
        self.draining && ((live == 0 && !self.channel_open) || self.now >= self.drain_deadline)
    }

    pub(super) fn stopped(&mut self) {
        self.counts.live = 0;
        self.counters.store(&self.counts);
        self.counters.set_state(STATE_STOPPED);
    }

    /// Begins the drain; false when it had begun already. The driver says
    /// so ([`Core::publish_drain`]) once it has let go of its own listener.
    pub(super) fn start_drain(&mut self) -> bool {
        if self.draining {
            return false;
        }
        self.draining = true;
        self.drain_deadline = self.now + self.config.drain_timeout.as_millis() as u64;
        true
    }

    /// Says in the stats block that the drain has begun, once the worker has
    /// taken what waited on its own listener (`reuseport`) and let go of it:
    /// from then on the master, which keeps a retired slot's listener,
    /// takes what comes there and closes it.
    pub(super) fn publish_drain(&self) {
        self.counters.set_state(STATE_DRAINING);
    }

    /// Whether the handler asked for its clients' addresses: the io_uring
    /// driver then accepts plain descriptors, which `getpeername` can name.
    pub(super) fn wants_peers(&self) -> bool {
        self.wants_peers
    }

    /// Readies `conn` in slot `slot` for a connection just taken on
    /// `socket` (`None`: a direct descriptor, which no system call names),
    /// and counts it; one taken as the drain began (its accept raced the
    /// cancel) is drained like the others, not kept to the drain's deadline.
    /// When the handler asked for it, the client's address is read here,
    /// once for the connection's life.
    pub(super) fn open_connection(
        &mut self,
        conn: &mut Connection,
        slot: u32,
        origin: Origin,
        socket: Option<BorrowedFd<'_>>,
    ) {
        if self.wants_peers {
            if let Some(peer) = self.peers.get_mut(slot as usize) {
                *peer = socket.and_then(|socket| crate::sys::socket::peer_addr(socket).ok());
            }
        }
        conn.open(self.now, &self.timeouts);
        if self.draining {
            let (_, ctx) = self.parts(slot);
            conn.handle_drain(&ctx);
        }
        self.counts.accepted += 1;
        // At once, not at the end of the turn: whoever steers by what waits
        // unaccepted sees it leave the queue when it does. One the master
        // handed over was counted by the master, off the listener it took
        // it from.
        if let (Some(tally), Origin::Accepted) = (&self.sources.accept_tally, origin) {
            tally.add(1);
        }
    }
}
