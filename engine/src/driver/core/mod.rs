//! What both drivers keep besides their connections and their kernel
//! interface: the preformatted replies, the carry and output buffers, the
//! counters, draining, the injected faults, and the master's channel
//! (batches in, acks out).
//!
//! This file: the state; `setup.rs`: the state built at start, its
//! reservations sized and named; `slot.rs`: a slot's buffers and context, a
//! connection opened and freed; `turn.rs`: the loop turn, the clock,
//! deadlines judged, draining; `batches.rs`: the master's batches taken and
//! acknowledged; `capacity.rs`: what the worker can hold (the open-file
//! limit, idle connections reclaimed); `sized_by.rs`: the limits that sized
//! a reservation, named in its error.

mod batches;
mod capacity;
mod setup;
mod sized_by;
mod slot;
mod turn;

use std::net::SocketAddr;

use super::idle::IdleList;
use super::late_closes::LateCloses;
use super::Sources;
use crate::answer::{BodyPool, ResponseScratch};
use crate::channel::{Acks, Message};
use crate::config::EngineConfig;
use crate::conn::Timeouts;
use crate::handler::Handler;
use crate::http::Limits;
use crate::lazy_bytes::LazyBytes;
use crate::response::Responses;
use crate::stats::{CountersSnapshot, WorkerCounters};

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
    pub(super) stall_due: Option<StallDue>,
}

/// When an injected stall is due, once the worker is ready.
#[derive(Clone, Copy, Debug)]
pub(super) enum StallDue {
    /// At this time (ms on the loop's clock).
    At(u64),
    /// Once the worker's count of requests reaches this.
    Requests(u64),
}
