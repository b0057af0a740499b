//! The worker's state built at start: every buffer reserved for the
//! connections it can hold (sized by `--max-conns` or the open-file limit,
//! and named by it when refused), the preformatted replies, the counters
//! set before the worker is ready.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::sized_by::{header_buffers_text, slots_text};
use super::Core;
use crate::answer::{BodyPool, ResponseScratch, FIELDS as RESPONSE_FIELDS};
use crate::channel::{Acks, Message};
use crate::config::EngineConfig;
use crate::conn::Timeouts;
use crate::driver::idle::IdleList;
use crate::driver::late_closes::LateCloses;
use crate::driver::{Sources, CARRY_MIN};
use crate::handler::Handler;
use crate::lazy_bytes::LazyBytes;
use crate::refused::reservation_refused as cannot_reserve;
use crate::response::{Responses, BODY_APART, MAX_RUN, PAGES};
use crate::stats::WorkerCounters;
use crate::sys::now_ms;

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
    pub(in crate::driver) fn new(
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
            stall_due: None,
        })
    }
}
