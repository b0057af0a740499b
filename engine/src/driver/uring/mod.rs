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
//! This file: the worker's state, the loop and the ops' dispatch;
//! `setup.rs`: the ring and the worker built at start; `adopt.rs`: a
//! connection taken into a slot; `accepts.rs`: the listener's accepts and
//! the tick's sweep of its queue; `channel.rs`: the master's channel (its
//! receive, the turn's acks out; a batch is taken in `../handed.rs`, as on
//! epoll); `tick.rs`: deadlines and stalled holders judged on the tick;
//! `drain.rs`: the drain begun; `reclaim.rs`: idle connections closed to
//! make room; `connection/`: one connection's ops and completions;
//! `held.rs`: input paused connections hold; `starved.rs`: receives that
//! wait for a buffer, and the reads of those whose clients closed;
//! `ring_socket.rs`: a descriptor or a direct descriptor.

mod accepts;
mod adopt;
mod channel;
mod connection;
mod drain;
mod held;
mod reclaim;
mod ring_socket;
mod setup;
mod starved;
mod tick;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};

use io_uring::types::{Fd, Timespec};
use io_uring::{opcode, squeue, IoUring};

use self::connection::Slot;
use self::held::HeldBuffers;
use self::starved::SpareBuffer;
use super::core::Core;
use crate::bufring::BufRing;
use crate::slab::Slab;
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

impl UringWorker<'_> {
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
}
