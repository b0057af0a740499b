//! The io_uring driver: one ring, one `submit_and_wait` per loop turn,
//! completions handled in a batch and the submissions they cause sent with
//! the next turn. Connections receive with multishot receives into a
//! registered provided-buffer ring and send their replies with `Send` or
//! `SendMsg`. What the ring accepts itself it keeps as direct descriptors
//! (`ring_socket.rs`).
//!
//! Accepts are single-shot and kept outstanding: a multishot accept on a
//! listener shared by several rings would send every connection to one of
//! them. Never more accepts are armed than free slots, so a full worker
//! stops accepting; connections handed over that take the slots accepts
//! were armed for have those accepts cancelled.
//!
//! This file: the ring, the loop, a connection taken into a slot, time and
//! draining; `accepts.rs`: the listener's accepts and the tick's sweep of
//! its queue; `channel.rs`: the master's channel (its receive, the turn's
//! acks out; a batch is taken in `../handed.rs`, as on epoll);
//! `reclaim.rs`: idle connections closed to make room; `connection.rs`:
//! one connection's ops and completions; `held.rs`: input paused
//! connections hold; `starved.rs`: receives that wait for a buffer, and
//! the reads of those whose clients closed;
//! `ring_socket.rs`: a descriptor or a direct descriptor.

mod accepts;
mod channel;
mod connection;
mod held;
mod reclaim;
mod ring_socket;
mod starved;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::time::SystemTime;

use io_uring::types::{CancelBuilder, Fd, Timespec};
use io_uring::{opcode, squeue, IoUring};

use self::connection::Slot;
use self::held::{HeldBuffers, Suspicion};
use self::ring_socket::{RingSocket, SocketCount};
use self::starved::SpareBuffer;
use super::core::Core;
use super::{next_queued, Origin, TICK};
use crate::bufring::BufRing;
use crate::fallible;
use crate::refused::{self, reservation_refused as cannot_reserve};
use crate::slab::Slab;
use crate::sys::socket;
use crate::token::{self, Op};
use crate::uring::{self, Completion};

pub(super) struct UringWorker<'a> {
    // Dropped first: the kernel stops using the buffers and pages below.
    ring: IoUring,
    bufs: BufRing,
    /// Where a connection that waits for a ring buffer reads once its
    /// client hung up (`starved.rs`).
    spare: SpareBuffer,
    /// The receive buffers paused connections hold.
    held: HeldBuffers,
    conns: Slab<Slot>,
    core: Core<'a>,
    tick: Box<Timespec>,
    accepts_armed: u32,
    /// Of `accepts_armed`, those a cancel was sent for, their completion to
    /// come: none is armed until they are all in.
    accepts_cancelling: u32,
    /// An accept ran out of fds or memory: no new accepts until the next tick.
    accepts_starved: bool,
    /// An accept of the ring's completed since the last tick.
    accepted_since_tick: bool,
    /// Connections waited in the listen queue at the last tick.
    queue_at_tick: bool,
    /// The ring's accepts make direct descriptors (the table is registered).
    accepts_direct: bool,
    /// Direct descriptors the ring accepted when no slot was left for them
    /// (see [`UringWorker::adopt`]): they wait for one, counted live.
    /// At most `accepts_outstanding`, allocated at start.
    slotless: Vec<u32>,
    /// Receives may be bundles: one completion may fill several buffers.
    bundles: bool,
    /// The bytes one bundle completion may carry, where the kernel caps it.
    bundle_cap: Option<u32>,
    completions: Vec<Completion>,
    /// Slots whose receive found the ring empty, oldest first
    /// ([`Slot::awaiting_buffer`]); each slot at most once
    /// (`buffer_queued`), so it never outgrows the slots allocated at start.
    buffer_waiters: VecDeque<u32>,
    buffer_queued: Box<[bool]>,
    /// The ring's count of buffers given back at the last wake of waiters.
    waiters_woken_at: u64,
    /// The ring's count of buffers given back when a receive last found it
    /// empty: while it has not moved, receives wait for input before they
    /// take a buffer (`uring::poll_first`).
    ring_found_empty_at: Option<u64>,
    /// Ticks since start ([`Slot::armed_tick`]).
    ticks: u64,
}

impl<'a> UringWorker<'a> {
    pub(super) fn new(mut core: Core<'a>) -> io::Result<Self> {
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes: the tick's sweep must never block
            // on it (io_uring's own accepts handle EAGAIN).
            socket::set_nonblocking(listener.as_fd())?;
        }
        let entries = core.config.ring_entries;
        let ring = uring::build_ring(entries).map_err(|e| {
            let completions = entries.saturating_mul(uring::COMPLETIONS_PER_ENTRY);
            let sized_by = format_args!(
                "{entries} submission entries x {} + {completions} completion entries x {}",
                uring::SUBMISSION_BYTES,
                uring::COMPLETION_BYTES
            );
            refused::mapping_refused(e, uring::ring_bytes(entries), "io_uring ring", sized_by)
        });
        let ring = ring.map_err(|e| short_of_memory(e, "its io_uring ring"))?;
        let bufs = BufRing::register(&ring.submitter(), core.config.recv_buffers, core.config.recv_buffer_size)
            .map_err(|e| short_of_memory(e, "its ring of provided buffers"))?;
        let completions_cap = ring.params().cq_entries() as usize;
        // A handler that asks for its clients' addresses gets plain
        // descriptors from the ring's accepts too, each named by one
        // `getpeername` as it is adopted: a direct descriptor has no number
        // a system call takes, Linux has no ring op that names a socket's
        // peer (6.18), and an accept's own address buffer is no help here
        // (the accepts share one user_data, which their cancel relies on,
        // and a multishot accept writes every address into one buffer).
        let table = match core.sources.listener {
            Some(_) if !core.wants_peers() => ring_socket::register_table(&ring.submitter(), core.slots()),
            _ => None,
        };
        // An accept into a full table would take the connection off the queue
        // and close it unanswered: the worker holds no more than the table.
        match table {
            Some(size) => core.limit_capacity(size as usize),
            None => core.hold_plain_descriptors(),
        }
        let accepts_direct = table.is_some();
        let outstanding = core.config.accepts_outstanding as usize;
        let bundles = uring::recv_bundles(&ring);
        let bundle_cap = uring::recv_bundle_cap(core.config.recv_buffer_size).filter(|_| bundles);
        let recv_buffers = core.config.recv_buffers;
        let held = HeldBuffers::new(recv_buffers).map_err(|e| {
            cannot_reserve(e, "held-input chains", format_args!("{recv_buffers} x {}", HeldBuffers::BYTES_PER_BUFFER))
        })?;
        // As many slots as it can hold: full when the master sees it full.
        let conns = Slab::new(core.capacity(), Slot::default)
            .map_err(|e| core.refused_per_connection(e, "connection slots", Slab::<Slot>::BYTES_PER_SLOT))?;
        let slotless = fallible::with_capacity(outstanding)
            .map_err(|e| cannot_reserve(e, "slotless accepts", format_args!("{outstanding} x {}", size_of::<u32>())))?;
        let slots = core.capacity();
        let buffer_waiters = fallible::with_capacity(slots)
            .map(VecDeque::from)
            .map_err(|e| cannot_reserve(e, "receive buffer waiters", format_args!("{slots} x {}", size_of::<u32>())))?;
        let buffer_queued = fallible::zeroed(slots)
            .map_err(|e| cannot_reserve(e, "receive buffer waiters", format_args!("{slots} x 1")))?;
        let spare = SpareBuffer::new()
            .map_err(|e| cannot_reserve(e, "spare receive buffer", format_args!("{}", SpareBuffer::BYTES)))?;
        let completions = fallible::with_capacity(completions_cap).map_err(|e| {
            cannot_reserve(e, "completion batch", format_args!("{completions_cap} x {}", size_of::<Completion>()))
        })?;
        // Its last reservation: room for what is allocated without one
        // from here on (its first turns), which aborts if refused.
        refused::keep_headroom("completion batch")?;
        Ok(UringWorker {
            ring,
            bufs,
            spare,
            held,
            conns,
            core,
            tick: Box::new(Timespec::from(TICK)),
            accepts_armed: 0,
            accepts_cancelling: 0,
            accepts_starved: false,
            accepted_since_tick: false,
            queue_at_tick: false,
            accepts_direct,
            slotless,
            bundles,
            bundle_cap,
            completions,
            buffer_waiters,
            buffer_queued,
            waiters_woken_at: 0,
            ring_found_empty_at: None,
            ticks: 0,
        })
    }

    pub(super) fn serve(&mut self) -> io::Result<()> {
        self.arm_accepts()?;
        self.arm_channel()?;
        if let Some(shutdown) = &self.core.sources.shutdown {
            let poll = opcode::PollAdd::new(Fd(shutdown.as_raw_fd()), libc::POLLIN as u32).build();
            self.push(poll.user_data(token::encode(Op::Shutdown, 0, 0)))?;
        }
        self.arm_tick()?;
        self.core.ready();
        loop {
            if !self.core.begin_turn(self.live()) {
                break;
            }
            uring::submit_and_wait(&mut self.ring)?;
            self.core.woke();
            uring::reap(&mut self.ring, &mut self.completions);
            for i in 0..self.completions.len() {
                let (user_data, result, flags) = self.completions[i];
                self.complete(user_data, result, flags)?;
            }
            // Slots freed in this turn go first to what the ring accepted
            // with none left, then make room for accepts again.
            self.adopt_slotless()?;
            self.arm_accepts()?;
            self.publish_acks()?;
            while let Some(fd) = self.core.late_closes.next_due(self.core.now) {
                self.push_ignored(opcode::Close::new(Fd(fd.into_raw_fd())).build())?;
            }
            self.wake_buffer_waiters(false)?;
        }
        // Hand the last closes to the kernel before the ring goes.
        self.ring.submit()?;
        self.core.stopped();
        Ok(())
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every pointer an entry carries (msghdrs, iovecs, response pages,
        // the tick timespec, the spare receive buffer, which nothing else touches
        // while its one receive is on the way) points into the worker, whose slabs
        // and boxes do not move or free that memory until the op's completion is
        // reaped or the ring is dropped.
        unsafe { uring::push(&mut self.ring, &entry) }
    }

    /// Submits an op whose success needs no handling (close, cancel):
    /// the kernel posts no completion unless it fails.
    fn push_ignored(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: as in `push`.
        unsafe { uring::push_ignored(&mut self.ring, entry) }
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) -> io::Result<()> {
        // Unknown tokens include `uring::IGNORED`: a fire-and-forget op that failed.
        let Some((op, slot, generation)) = token::decode(user_data) else { return Ok(()) };
        match op {
            Op::Accept => self.on_accept(result),
            Op::Recv => self.on_recv(slot, generation, result, flags),
            Op::Send => self.on_send(slot, generation, result),
            Op::Channel => self.on_channel(result),
            Op::Tick => self.on_tick(),
            Op::Shutdown => self.start_drain(),
            Op::HalfClose => self.on_half_closed(slot, generation),
            Op::Unacknowledged => self.on_unacknowledged(slot, generation, result),
            Op::Reset => self.on_reset_watch(slot, generation, result),
            Op::RecvSpare => self.on_spare_recv(slot, generation, result),
        }
    }

    // --- sources of connections ----------------------------------------------------------

    /// Connections the worker may still take: free slots, and no more than
    /// its table of direct descriptors holds when its accepts fill that.
    fn room(&self) -> usize {
        self.core.capacity().saturating_sub(self.live())
    }

    /// Open connections: those in slots, and those the ring accepted that
    /// wait for one.
    fn live(&self) -> usize {
        self.conns.len() + self.slotless.len()
    }

    /// Takes a connection into the slab and starts receiving on it (a handed
    /// one once its batch's ack is out: `handed::take_message`), closing
    /// the longest-idle connection first when the worker is full; false
    /// when every slot is taken by a busy one: `socket` is closed then (the
    /// master hands a declined one on), unless the ring accepted it. An
    /// accept armed for a free slot completes whenever a client comes, and
    /// a connection the master handed over (`reuseport`'s rescue of a full
    /// worker's queue) may have taken that slot meanwhile; the kernel has
    /// taken the client off the queue by then, and a close would reset it
    /// unanswered. It waits for a slot instead ([`UringWorker::adopt_slotless`]).
    fn adopt(&mut self, socket: RingSocket, origin: Origin) -> io::Result<bool> {
        if self.room() == 0 {
            // Full: the longest-idle keep-alive connection makes room, if any.
            self.reclaim_oldest()?;
        }
        // A slot freed while accepted ones wait is theirs, not a hand-off's.
        let waiting = if origin == Origin::Handed { self.slotless.len() } else { 0 };
        let slot = if self.conns.vacant() > waiting { self.conns.insert() } else { None };
        let Some((slot, generation)) = slot else {
            if let RingSocket::Direct(index) = socket {
                if self.slotless.len() < self.slotless.capacity() {
                    self.slotless.push(index);
                    return Ok(false);
                }
                self.push_ignored(socket.into_close())?;
            }
            return Ok(false);
        };
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            *entry = Slot { socket: Some(socket), origin, ..Slot::default() };
            let socket = entry.socket.as_ref().and_then(RingSocket::plain);
            self.core.open_connection(&mut entry.conn, slot, origin, socket);
        }
        match origin {
            // Served once the master knows it is ours: `handed::take_message`.
            Origin::Handed => self.core.handed_now.push((slot, generation)),
            Origin::Accepted => self.drive(slot, generation)?,
        }
        Ok(true)
    }

    /// Gives the connections the ring accepted with no slot left the slots
    /// freed since (or an idle one's, closed for them), oldest first.
    fn adopt_slotless(&mut self) -> io::Result<()> {
        while !self.slotless.is_empty() {
            if self.conns.vacant() == 0 && !self.reclaim_oldest()? {
                break;
            }
            let index = self.slotless.remove(0);
            self.adopt(RingSocket::Direct(index), Origin::Accepted)?;
        }
        Ok(())
    }

    // --- time and draining ---------------------------------------------------------------------

    fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token::encode(Op::Tick, 0, 0)))
    }

    fn on_tick(&mut self) -> io::Result<()> {
        self.core.responses.refresh(SystemTime::now());
        let now = self.core.now;
        let due = self.core.deadlines_due();
        let under_pressure = self.held.under_pressure();
        self.ticks += 1;
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.closing {
                continue;
            }
            let suspicion = entry.stall.on_tick(!entry.held.is_empty(), under_pressure);
            let cut_off = match suspicion {
                Suspicion::None => false,
                Suspicion::Ask => match unacknowledged(&entry.socket, slot, generation) {
                    SocketCount::Now(count) => entry.stall.judge(count),
                    SocketCount::Ask(ask) => {
                        // Its answer comes to `on_unacknowledged`.
                        entry.stall.asked();
                        self.push(ask)?;
                        false
                    }
                },
            };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            // Starved, and its receive armed again before the last tick and
            // not completed since: it waits for input (one armed with input
            // in the socket completes at once, with it or with ENOBUFS). Its
            // ENOBUFS came with nothing to read: a receive armed on an empty
            // socket takes its buffer before it reads. Its client is silent
            // and its timers run again (until 2026-12-07 it stayed starved
            // until input came, every deadline started over).
            let rested =
                entry.starved && entry.receiving && !entry.cancelling && self.ticks.wrapping_sub(entry.armed_tick) > 1;
            if rested {
                entry.starved = false;
            }
            if cut_off {
                // Its client does not read, and what it holds is wanted by others.
                entry.conn.handle_read_error();
            } else if entry.conn.deadline() > now || !due {
                if rested {
                    // Idle, it may be reclaimed again: listed (`drive`), as
                    // a reclaim that passed it over while starved unlisted it.
                    self.drive(slot, generation)?;
                }
                continue;
            } else {
                let (_, mut ctx) = self.core.parts(slot);
                if entry.starved && entry.conn.postpone_for_unread_input(&ctx, entry.awaiting_buffer) {
                    // No buffer to read its input with: not its client's delay.
                    continue;
                }
                entry.conn.handle_timeout(&mut ctx);
                // A body's 408 is a request answered, as a 400 is.
                self.core.work_for(entry.conn.take_parsed());
                self.look_at_reader(slot, generation)?;
            }
            self.drive(slot, generation)?;
        }
        // A buffer may have come back that no receive armed since took.
        self.wake_buffer_waiters(true)?;
        self.core.recheck_fd_limit();
        self.accepts_starved = false;
        self.sweep_listener()?;
        self.reclaim_for_queue()?;
        self.arm_accepts()?;
        self.arm_tick()
    }

    /// Asks the kernel how many bytes the client has not acknowledged, when
    /// the connection wants to know whether it reads (its writer's deadline
    /// passed with input come meanwhile: `conn::ReaderWatch`): a plain
    /// descriptor with the ioctl, a direct one through the ring
    /// ([`UringWorker::on_unacknowledged`]; a kernel before 6.7 fails the op,
    /// and the connection is judged as before it asked).
    fn look_at_reader(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if !entry.conn.take_reader_look() {
            return Ok(());
        }
        match unacknowledged(&entry.socket, slot, generation) {
            SocketCount::Now(count) => {
                let (_, ctx) = self.core.parts(slot);
                entry.conn.handle_unacknowledged(count, &ctx);
                Ok(())
            }
            SocketCount::Ask(ask) => self.push(ask),
        }
    }

    fn start_drain(&mut self) -> io::Result<()> {
        if !self.core.start_drain() {
            return Ok(());
        }
        if self.accepts_armed > 0 {
            let all_accepts = CancelBuilder::user_data(token::encode(Op::Accept, 0, 0)).all();
            self.push_ignored(opcode::AsyncCancel2::new(all_accepts).build())?;
        }
        if self.core.sources.own_listener {
            // Nobody else accepts there: take what is queued, then let it go.
            if let Some(listener) = self.core.sources.listener.take() {
                while self.conns.vacant() > 0 {
                    let Some(fd) = next_queued(&listener) else { break };
                    self.adopt(RingSocket::Plain(fd), Origin::Accepted)?;
                }
            }
        }
        self.core.publish_drain();
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            let (_, ctx) = self.core.parts(slot);
            entry.conn.handle_drain(&ctx);
        }
        Ok(())
    }
}

/// `e` as it is, unless it is an `ENOMEM` that is not a refused reservation
/// (`refused.rs`): then with the memory that lacked for `what` named (a
/// user's locked memory, where rings count against it; a cgroup's), which a
/// bare `Cannot allocate memory` left the operator to guess. Still not a
/// refused reservation: another process may let that memory go, and a
/// restart find it.
fn short_of_memory(e: io::Error, what: &str) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    io::Error::new(e.kind(), format!("{what}: {e}: {}", crate::backend::short_of_memory(None)))
}

/// The count of unacknowledged bytes of a connection's socket, or the ring
/// op that asks for it, answered to `on_unacknowledged` (no socket: `None`).
fn unacknowledged(socket: &Option<RingSocket>, slot: u32, generation: u32) -> SocketCount {
    match socket {
        Some(socket) => socket.ask_unacknowledged(token::encode(Op::Unacknowledged, slot, generation)),
        None => SocketCount::Now(None),
    }
}
