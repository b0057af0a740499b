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
//! This file: the ring, the loop, where connections come from, time and
//! draining; `connection.rs`: one connection's ops and completions;
//! `held.rs`: input paused connections hold; `ring_socket.rs`: a
//! descriptor or a direct descriptor.

mod connection;
mod held;
mod ring_socket;

use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::time::SystemTime;

use io_uring::types::{CancelBuilder, DestinationSlot, Fd, Timespec};
use io_uring::{opcode, squeue, IoUring};

use self::connection::Slot;
use self::held::HeldBuffers;
use self::ring_socket::RingSocket;
use super::core::Core;
use super::{adopt_batch, next_queued, Origin, TICK};
use crate::bufring::BufRing;
use crate::channel::Tag;
use crate::slab::Slab;
use crate::sys::socket;
use crate::token::{self, Op};
use crate::uring::{self, Completion};

pub(super) struct UringWorker<'a> {
    // Dropped first: the kernel stops using the buffers and pages below.
    ring: IoUring,
    bufs: BufRing,
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
    /// The connections of the batch being adopted, served only once its ack
    /// is published (see [`UringWorker::on_channel`]).
    handed_now: Vec<(u32, u32)>,
    /// The worker is full at a table of direct descriptors that its
    /// open-file limit made smaller than `--max-conns` (counted once per filling).
    full_at_fd_limit: bool,
    /// Receives may be bundles: one completion may fill several buffers.
    bundles: bool,
    /// The bytes one bundle completion may carry, where the kernel caps it.
    bundle_cap: Option<u32>,
    completions: Vec<Completion>,
}

impl<'a> UringWorker<'a> {
    pub(super) fn new(mut core: Core<'a>) -> io::Result<Self> {
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes: the tick's sweep must never block
            // on it (io_uring's own accepts handle EAGAIN).
            socket::set_nonblocking(listener.as_fd())?;
        }
        let ring = uring::build_ring(core.config.ring_entries)?;
        let bufs = BufRing::register(&ring.submitter(), core.config.recv_buffers, core.config.recv_buffer_size)?;
        let completions_cap = ring.params().cq_entries() as usize;
        let table = match core.sources.listener {
            Some(_) => ring_socket::register_table(&ring.submitter(), core.config.max_conns),
            None => None,
        };
        // An accept into a full table would take the connection off the queue
        // and close it unanswered: the worker holds no more than the table.
        if let Some(size) = table {
            core.limit_capacity(size as usize);
        }
        let accepts_direct = table.is_some();
        let outstanding = core.config.accepts_outstanding as usize;
        let bundles = uring::recv_bundles(&ring);
        let bundle_cap = uring::recv_bundle_cap(core.config.recv_buffer_size).filter(|_| bundles);
        Ok(UringWorker {
            ring,
            bufs,
            held: HeldBuffers::new(core.config.recv_buffers),
            conns: Slab::new(core.config.max_conns, Slot::default),
            core,
            tick: Box::new(Timespec::from(TICK)),
            accepts_armed: 0,
            accepts_cancelling: 0,
            accepts_starved: false,
            accepted_since_tick: false,
            queue_at_tick: false,
            accepts_direct,
            slotless: Vec::with_capacity(outstanding),
            handed_now: Vec::with_capacity(crate::channel::MAX_FDS),
            full_at_fd_limit: false,
            bundles,
            bundle_cap,
            completions: Vec::with_capacity(completions_cap),
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
        }
        // Hand the last closes to the kernel before the ring goes.
        self.ring.submit()?;
        self.core.stopped();
        Ok(())
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every pointer an entry carries (msghdrs, iovecs, response pages,
        // the tick timespec) points into the worker, whose slabs and boxes do not
        // move or free that memory until the op's completion is reaped or the
        // ring is dropped.
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
        }
    }

    // --- sources of connections ----------------------------------------------------------

    /// Arms accepts for the room there is, up to `accepts_outstanding`, and
    /// cancels those armed beyond it.
    fn arm_accepts(&mut self) -> io::Result<()> {
        let Some(listener) = self.core.sources.listener.as_ref().map(|l| l.as_raw_fd()) else { return Ok(()) };
        let free = self.room();
        let room = free.min(self.core.config.accepts_outstanding as usize) as u32;
        // Out of room because the open-file limit sized the table: that is the
        // worker at its open-file limit, as an accept failing with EMFILE would say.
        let at_fd_limit = free == 0 && self.accepts_direct && self.core.capacity() < self.core.config.max_conns;
        if at_fd_limit && !self.full_at_fd_limit {
            self.core.counts.fd_limit_hits += 1;
        }
        self.full_at_fd_limit = at_fd_limit;
        self.cancel_surplus_accepts(room)?;
        while !self.core.draining && !self.accepts_starved && self.accepts_cancelling == 0 && self.accepts_armed < room
        {
            let accept = opcode::Accept::new(Fd(listener), std::ptr::null_mut(), std::ptr::null_mut());
            // A direct descriptor is never in the process's table, so never
            // inherited: the kernel refuses SOCK_CLOEXEC with it.
            let accept = if self.accepts_direct {
                accept.file_index(Some(DestinationSlot::auto_target())).build()
            } else {
                accept.flags(libc::SOCK_CLOEXEC).build()
            };
            self.push(accept.user_data(token::encode(Op::Accept, 0, 0)))?;
            self.accepts_armed += 1;
        }
        Ok(())
    }

    /// Cancels armed accepts beyond `room`: a connection handed over
    /// (`reuseport`'s rescue of a full worker's queue, the master counting
    /// this worker's free slots as room) took the slot one was armed for.
    /// Left armed, it would take the next client off the listener's queue
    /// with no slot for it, and that client would wait unanswered for one
    /// of this worker's connections to end or idle a second
    /// ([`UringWorker::adopt`]), where in the queue the master could hand
    /// it to whichever worker has room first. All are cancelled and what
    /// room is left is armed again once they are in: cancels of one accept
    /// each, all sent in one turn, took one between them (the same one).
    /// A cancel comes too late for an accept that completes meanwhile: that
    /// client waits for a slot.
    fn cancel_surplus_accepts(&mut self, room: u32) -> io::Result<()> {
        // The drain cancels them all itself.
        if self.core.draining || self.accepts_cancelling > 0 || self.accepts_armed <= room {
            return Ok(());
        }
        let all_accepts = CancelBuilder::user_data(token::encode(Op::Accept, 0, 0)).all();
        self.push_ignored(opcode::AsyncCancel2::new(all_accepts).build())?;
        self.accepts_cancelling = self.accepts_armed;
        Ok(())
    }

    /// On the tick, a full worker with idle connections and a queue on its
    /// listener closes a small batch of the longest idle, so accepts are
    /// armed for the waiting ones ([`Core::reclaims_due`]). An accept cannot
    /// be armed first: it would make a direct descriptor in a full table.
    fn reclaim_for_queue(&mut self) -> io::Result<()> {
        for _ in 0..self.core.reclaims_due(self.room()) {
            if !self.reclaim_oldest()? {
                break;
            }
        }
        Ok(())
    }

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

    fn on_accept(&mut self, result: i32) -> io::Result<()> {
        self.accepts_armed -= 1;
        if result == -libc::ECANCELED {
            self.accepts_cancelling = self.accepts_cancelling.saturating_sub(1);
        }
        // One the cancel came too late for completed as any accept does.
        self.accepts_cancelling = self.accepts_cancelling.min(self.accepts_armed);
        if result >= 0 {
            self.accepted_since_tick = true;
            let socket = if self.accepts_direct {
                RingSocket::Direct(result as u32)
            } else {
                // SAFETY: a successful accept returns a new fd that nothing else owns.
                RingSocket::Plain(unsafe { crate::sys::own_fd(result) })
            };
            self.adopt(socket, Origin::Accepted)?;
        } else if crate::sys::out_of_resources(-result) || result == -libc::EINVAL {
            // Retrying now would spin: the tick lets accepts go again. EINVAL:
            // the listener no longer listens (the master stopping shut it
            // down just before this worker's drain began).
            if crate::sys::out_of_fds(-result) {
                self.core.hit_fd_limit(self.conns.len());
            }
            self.accepts_starved = true;
        }
        Ok(())
    }

    fn arm_channel(&mut self) -> io::Result<()> {
        let Some(channel) = self.core.sources.channel.as_ref().map(|c| c.as_raw_fd()) else { return Ok(()) };
        let header = self.core.inbox.prepare_recv();
        let recv = opcode::RecvMsg::new(Fd(channel), header).flags(libc::MSG_CMSG_CLOEXEC as u32).build();
        self.push(recv.user_data(token::encode(Op::Channel, 0, 0)))
    }

    fn on_channel(&mut self, result: i32) -> io::Result<()> {
        if result == -libc::EINTR {
            return self.arm_channel();
        }
        if result <= 0 {
            // The master is gone or done with us (or the channel broke): finish up and exit.
            self.core.channel_open = false;
            return self.start_drain();
        }
        let mut batch = self.core.take_batch(result as usize);
        let (adopted, declined) = adopt_batch(&mut batch, |fd| self.adopt(RingSocket::Plain(fd), Origin::Handed))?;
        self.core.counts.rejected += declined as u64;
        if batch.short() > 0 {
            self.core.batch_hit_fd_limit(self.live());
        }
        for _ in 0..batch.short() {
            if !self.reclaim_oldest()? {
                break;
            }
        }
        // The ack is published before these connections' receives can reach
        // the kernel (a full submission queue submits mid-turn): a worker that
        // dies after reading a request takes its connection along (as on epoll).
        let acked = self.core.acknowledge(&batch.received, adopted, self.live()) && self.core.flush_acks(self.live());
        for i in 0..self.handed_now.len() {
            let (slot, generation) = self.handed_now[i];
            self.drive(slot, generation)?;
        }
        self.handed_now.clear();
        if !acked {
            return self.master_gone();
        }
        if batch.received.tag == Some(Tag::Drain) {
            self.start_drain()?;
        }
        self.arm_channel()
    }

    /// Publishes the acks of the batches this turn took, together.
    fn publish_acks(&mut self) -> io::Result<()> {
        if self.core.flush_acks(self.live()) {
            return Ok(());
        }
        self.master_gone()
    }

    /// The master is gone (a wake-up for it could not be sent): finish up and exit.
    fn master_gone(&mut self) -> io::Result<()> {
        self.core.channel_open = false;
        self.start_drain()
    }

    /// Takes a connection into the slab and starts receiving on it (a handed
    /// one once its batch's ack is out: [`UringWorker::on_channel`]), closing
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
            self.core.open_connection(&mut entry.conn, slot, origin);
        }
        match origin {
            // Served once the master knows it is ours: `on_channel`.
            Origin::Handed => self.handed_now.push((slot, generation)),
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
        let under_pressure = self.held.under_pressure();
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.closing {
                continue;
            }
            if held::stalled_reader(&mut entry.stalled_ticks, !entry.held.is_empty(), under_pressure) {
                // Its client does not read, and what it holds is wanted by others.
                entry.conn.handle_read_error();
            } else if entry.conn.deadline() > now {
                continue;
            } else {
                let (_, mut ctx) = self.core.parts(slot);
                entry.conn.handle_timeout(&mut ctx);
                // A body's 408 is a request answered, as a 400 is.
                self.core.work_for(entry.conn.take_parsed());
            }
            self.drive(slot, generation)?;
        }
        self.core.recheck_fd_limit();
        self.accepts_starved = false;
        self.sweep_listener()?;
        self.reclaim_for_queue()?;
        self.arm_accepts()?;
        self.arm_tick()
    }

    /// Takes what waits in the listen queue with plain accepts when it has
    /// waited from one tick to the next while the ring's accepts took
    /// nothing. A wake-up meant for the waiters on a shared listener can go
    /// to one that is going away (a process exiting with accepts armed): the
    /// connection would then wait for the next one to wake somebody. A queue
    /// the ring's accepts are taking (a burst) stays theirs: they make direct
    /// descriptors, the sweep plain ones.
    fn sweep_listener(&mut self) -> io::Result<()> {
        let accepted = std::mem::take(&mut self.accepted_since_tick);
        let Some(listener) = self.core.sources.listener.as_ref() else { return Ok(()) };
        if self.core.draining {
            return Ok(());
        }
        // A failed look (a signal) only puts the sweep off to the next tick.
        let queue = socket::waiting(listener.as_fd()).unwrap_or(false);
        let stuck = queue && self.queue_at_tick && !accepted;
        self.queue_at_tick = queue;
        if !stuck {
            return Ok(());
        }
        while self.room() > self.accepts_armed as usize {
            let Some(listener) = self.core.sources.listener.as_ref() else { break };
            match socket::accept(listener.as_fd()) {
                Ok(Some(fd)) => {
                    self.adopt(RingSocket::Plain(fd), Origin::Accepted)?;
                }
                Ok(None) => break,
                Err(e) if e.raw_os_error().is_some_and(crate::sys::out_of_resources) => {
                    if e.raw_os_error().is_some_and(crate::sys::out_of_fds) {
                        self.core.hit_fd_limit(self.conns.len());
                    }
                    self.accepts_starved = true;
                    break;
                }
                // The connection died in the queue: try the next one.
                Err(_) => {}
            }
        }
        Ok(())
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
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            let (_, ctx) = self.core.parts(slot);
            entry.conn.handle_drain(&ctx);
        }
        Ok(())
    }
}
