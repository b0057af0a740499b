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
//! stops accepting.

use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::time::SystemTime;

use io_uring::types::{CancelBuilder, DestinationSlot, Fd, Fixed, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::core::Core;
use super::ring_socket::{self, RingSocket};
use super::{adopt_batch, next_queued, Origin, TICK};
use crate::bufring::{self, BufRing};
use crate::channel::Tag;
use crate::conn::Connection;
use crate::slab::Slab;
use crate::sys::socket::{self, half_close};
use crate::token::{self, Op};
use crate::uring::{self, Completion};

/// Receive buffers a connection holds for input it could not take yet
/// (paused, its carry full): in order, each from an offset.
#[derive(Debug, Default)]
struct Held {
    buffers: [(u16, u32, u32); MAX_HELD],
    len: usize,
}

/// Receive buffers one connection may hold: what one multishot round can
/// read (the kernel retries a multishot receive up to 32 times before it
/// requeues it), so a pause costs nothing a client sent before it; a client
/// that sends more while not reading its answers is cut off.
const MAX_HELD: usize = 32;

impl Held {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds buffer `bid` from `start` to `end`; false when full.
    fn push(&mut self, bid: u16, start: usize, end: usize) -> bool {
        if self.len == MAX_HELD {
            return false;
        }
        self.buffers[self.len] = (bid, start as u32, end as u32);
        self.len += 1;
        true
    }

    fn front(&self) -> Option<(u16, usize, usize)> {
        (self.len > 0).then(|| {
            let (bid, start, end) = self.buffers[0];
            (bid, start as usize, end as usize)
        })
    }

    fn advance_front(&mut self, start: usize) {
        self.buffers[0].1 = start as u32;
    }

    fn pop_front(&mut self) -> Option<u16> {
        let (bid, _, _) = self.front()?;
        self.buffers.copy_within(1..self.len, 0);
        self.len -= 1;
        Some(bid)
    }
}

/// A connection and the ring ops it has outstanding.
#[derive(Debug, Default)]
struct Slot {
    conn: Connection,
    /// Input waiting in receive buffers until the connection can take it.
    held: Held,
    /// The socket, until its close is handed to the ring.
    socket: Option<RingSocket>,
    /// The multishot receive is armed.
    receiving: bool,
    /// Its cancellation is on the way (reading paused).
    cancelling: bool,
    /// The close was submitted; the slot waits for its ops to end.
    closing: bool,
    /// The ring's half-close of a direct descriptor is on the way. The
    /// kernel runs it in a worker thread and looks the table index up only
    /// then, so the close (which frees the index for the next accept) waits
    /// for it.
    half_closing: bool,
    /// Accepted here or handed over by the master (the close sends the FIN then).
    origin: Origin,
}

pub(super) struct UringWorker<'a> {
    // Dropped first: the kernel stops using the buffers and pages below.
    ring: IoUring,
    bufs: BufRing,
    conns: Slab<Slot>,
    core: Core<'a>,
    tick: Box<Timespec>,
    accepts_armed: u32,
    /// An accept ran out of fds or memory: no new accepts until the next tick.
    accepts_starved: bool,
    /// The ring's accepts make direct descriptors (the table is registered).
    accepts_direct: bool,
    completions: Vec<Completion>,
}

impl<'a> UringWorker<'a> {
    pub(super) fn new(core: Core<'a>) -> io::Result<Self> {
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes: the tick's sweep must never block
            // on it (io_uring's own accepts handle EAGAIN).
            socket::set_nonblocking(listener.as_fd())?;
        }
        let ring = uring::build_ring(core.config.ring_entries)?;
        let bufs = BufRing::register(&ring.submitter(), core.config.recv_buffers, core.config.recv_buffer_size)?;
        let completions_cap = ring.params().cq_entries() as usize;
        let accepts_direct =
            core.sources.listener.is_some() && ring_socket::register_table(&ring.submitter(), core.config.max_conns);
        Ok(UringWorker {
            ring,
            bufs,
            conns: Slab::new(core.config.max_conns, Slot::default),
            core,
            tick: Box::new(Timespec::from(TICK)),
            accepts_armed: 0,
            accepts_starved: false,
            accepts_direct,
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
            self.core.publish(self.conns.len());
            if self.core.finished(self.conns.len()) {
                break;
            }
            self.core.stall_if_due();
            uring::submit_and_wait(&mut self.ring)?;
            self.core.woke();
            uring::reap(&mut self.ring, &mut self.completions);
            for i in 0..self.completions.len() {
                let (user_data, result, flags) = self.completions[i];
                self.complete(user_data, result, flags)?;
            }
            // Slots freed in this turn make room for accepts again.
            self.arm_accepts()?;
            self.send_acks()?;
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

    fn arm_accepts(&mut self) -> io::Result<()> {
        let Some(listener) = self.core.sources.listener.as_ref().map(|l| l.as_raw_fd()) else { return Ok(()) };
        let room = self.conns.vacant().min(self.core.config.accepts_outstanding as usize) as u32;
        while !self.core.draining && !self.accepts_starved && self.accepts_armed < room {
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

    fn on_accept(&mut self, result: i32) -> io::Result<()> {
        self.accepts_armed -= 1;
        if result >= 0 {
            let socket = if self.accepts_direct {
                RingSocket::Direct(result as u32)
            } else {
                // SAFETY: a successful accept returns a new fd that nothing else owns.
                RingSocket::Plain(unsafe { crate::sys::own_fd(result) })
            };
            self.adopt(socket, Origin::Accepted)?;
        } else if crate::sys::out_of_resources(-result) {
            // Retrying now would spin: the tick lets accepts go again.
            if crate::sys::out_of_fds(-result) {
                self.core.counts.fd_limit_hits += 1;
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
        if !self.core.acknowledge(&batch.received, adopted, self.conns.len()) {
            return self.master_gone();
        }
        if batch.received.tag == Some(Tag::Drain) {
            self.start_drain()?;
        }
        self.arm_channel()
    }

    /// Sends the acks of the batches this turn took, in one message.
    fn send_acks(&mut self) -> io::Result<()> {
        if self.core.flush_acks(self.conns.len()) {
            return Ok(());
        }
        self.master_gone()
    }

    /// The master is gone (an ack could not be sent): finish up and exit.
    fn master_gone(&mut self) -> io::Result<()> {
        self.core.channel_open = false;
        self.start_drain()
    }

    /// Takes a connection into the slab and starts receiving on it; false
    /// (and `socket` closed) when every slot is taken.
    fn adopt(&mut self, socket: RingSocket, origin: Origin) -> io::Result<bool> {
        let Some((slot, generation)) = self.conns.insert() else {
            if let RingSocket::Direct(_) = socket {
                self.push_ignored(socket.into_close())?;
            }
            return Ok(false);
        };
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            *entry = Slot { socket: Some(socket), origin, ..Slot::default() };
            self.core.open_connection(&mut entry.conn, slot, origin);
        }
        self.drive(slot, generation)?;
        Ok(true)
    }

    // --- one connection ----------------------------------------------------------------------

    /// Does what the connection asks after an event: half-close, close, send,
    /// start or stop reading.
    fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.closing {
            return Ok(());
        }
        if !entry.held.is_empty() && entry.conn.wants_read() {
            self.take_held(slot, generation);
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.conn.take_half_close() {
            match &entry.socket {
                // A direct call, not a ring op: the kernel may run an io_uring shutdown
                // later in a worker thread and look the fd number up only then, when it
                // may already belong to the next connection. This path is rare.
                Some(RingSocket::Plain(fd)) => half_close(fd.as_fd()),
                // No number to call with: a ring op, and the close waits for it.
                Some(RingSocket::Direct(index)) => {
                    entry.half_closing = true;
                    let shutdown = opcode::Shutdown::new(Fixed(*index), libc::SHUT_WR).build();
                    self.push(shutdown.user_data(token::encode(Op::HalfClose, slot, generation)))?;
                }
                None => {}
            }
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.conn.is_closed() {
            return self.begin_close(slot, generation);
        }
        let (_, mut ctx) = self.core.parts(slot);
        if let Some(header) = entry.conn.poll_send(&mut ctx) {
            let Some(socket) = &entry.socket else { return Ok(()) };
            let fd = socket.fd();
            // One slice (a keep-alive answer) needs no msghdr: a plain send is cheaper.
            let send = match entry.conn.single_slice() {
                Some((start, len)) => opcode::Send::new(fd, start, len as u32).flags(libc::MSG_NOSIGNAL).build(),
                None => opcode::SendMsg::new(fd, header).flags(libc::MSG_NOSIGNAL as u32).build(),
            };
            let send = send.flags(socket.flags()).user_data(token::encode(Op::Send, slot, generation));
            self.push(send)?;
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        // Held input goes first: no new reads until it is all taken.
        let wants = entry.conn.wants_read() && entry.held.is_empty();
        if wants && !entry.receiving {
            let Some(socket) = &entry.socket else { return Ok(()) };
            entry.receiving = true;
            let recv = opcode::RecvMulti::new(socket.fd(), bufring::GROUP).build().flags(socket.flags());
            self.push(recv.user_data(token::encode(Op::Recv, slot, generation)))?;
        } else if !wants && entry.receiving && !entry.cancelling {
            // Back-pressure: stop reading until the queued replies are sent.
            entry.cancelling = true;
            let cancel = opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build();
            self.push_ignored(cancel)?;
        }
        Ok(())
    }

    fn on_recv(&mut self, slot: u32, generation: u32, result: i32, flags: u32) -> io::Result<()> {
        let buffer = cqueue::buffer_select(flags);
        let Some(entry) = self.conns.get_mut(slot, generation) else {
            if let Some(bid) = buffer {
                self.bufs.recycle(bid);
            }
            return Ok(());
        };
        if !cqueue::more(flags) {
            entry.receiving = false;
            entry.cancelling = false;
        }
        let (carry, mut ctx) = self.core.parts(slot);
        match (result, buffer) {
            (len, Some(bid)) if len > 0 => {
                let len = len as usize;
                let taken = if entry.held.is_empty() {
                    // SAFETY: `bid` was just handed to us by this completion and is
                    // recycled only after `data` is last used.
                    let data = unsafe { self.bufs.filled(bid, len) };
                    entry.conn.handle_input(data, carry, cqueue::sock_nonempty(flags), &mut ctx)
                } else {
                    // Behind input already waiting: in order, after it.
                    0
                };
                if taken == len {
                    self.bufs.recycle(bid);
                } else if !entry.held.push(bid, taken, len) {
                    // More than it may hold while not reading its answers.
                    self.bufs.recycle(bid);
                    entry.conn.handle_read_error();
                }
                self.core.work_for(entry.conn.take_parsed());
            }
            (0, _) => entry.conn.handle_peer_closed(&mut ctx),
            // Out of receive buffers, or cancelled by us: re-armed below if still wanted.
            (e, _) if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
            _ => entry.conn.handle_read_error(),
        }
        if entry.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        self.drive(slot, generation)
    }

    /// Offers a connection the input it holds, in order, until it takes it all
    /// or pauses again.
    fn take_held(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        while let Some((bid, start, end)) = entry.held.front() {
            if !entry.conn.wants_read() {
                return;
            }
            let (carry, mut ctx) = self.core.parts(slot);
            // SAFETY: `bid` is held by this connection: not recycled, so the
            // kernel does not write it, until it is popped below.
            let data = unsafe { self.bufs.filled(bid, end) };
            let taken = entry.conn.handle_input(&data[start..], carry, false, &mut ctx);
            self.core.work_for(entry.conn.take_parsed());
            if start + taken < end {
                entry.held.advance_front(start + taken);
                return;
            }
            if let Some(done) = entry.held.pop_front() {
                self.bufs.recycle(done);
            }
        }
    }

    fn on_send(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        let (carry, mut ctx) = self.core.parts(slot);
        if result < 0 {
            entry.conn.handle_send_failed(&mut ctx);
        } else {
            let answered = entry.conn.handle_sent(result as usize, carry, &mut ctx);
            self.core.counts.requests += u64::from(answered);
        }
        if entry.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        self.drive(slot, generation)
    }

    /// Closes the socket through the ring and cancels its ops; the slot is
    /// given back once they have all completed.
    fn begin_close(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.closing {
            return Ok(());
        }
        entry.closing = true;
        // A half-close on the way closes the socket when it ends (`on_half_closed`).
        let mut socket = if entry.half_closing { None } else { entry.socket.take() };
        let (receiving, sending) = (entry.receiving, entry.conn.is_sending());
        if entry.origin == Origin::Handed {
            if let Some(RingSocket::Plain(handed)) = socket.take() {
                // Our FIN now, not when the master closes its copy, and our
                // close a moment later (see `Origin`). A direct call, as for
                // `take_half_close`: the number is closed later.
                half_close(handed.as_fd());
                socket = self.core.late_closes.keep(self.core.now, handed).map(RingSocket::Plain);
            }
        }
        if receiving {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build())?;
        }
        if sending {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Send, slot, generation)).build())?;
        }
        if let Some(socket) = socket {
            self.push_ignored(socket.into_close())?;
        }
        self.release_if_done(slot, generation);
        Ok(())
    }

    /// A direct descriptor's half-close ended: a close that waited for it goes now.
    fn on_half_closed(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        entry.half_closing = false;
        if !entry.closing {
            return Ok(());
        }
        if let Some(socket) = entry.socket.take() {
            self.push_ignored(socket.into_close())?;
        }
        self.release_if_done(slot, generation);
        Ok(())
    }

    fn release_if_done(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        if entry.closing && !entry.receiving && !entry.conn.is_sending() && !entry.half_closing {
            while let Some(bid) = entry.held.pop_front() {
                self.bufs.recycle(bid);
            }
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.release(&mut ctx);
            self.conns.remove(slot);
        }
    }

    // --- time and draining ---------------------------------------------------------------------

    fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token::encode(Op::Tick, 0, 0)))
    }

    fn on_tick(&mut self) -> io::Result<()> {
        self.core.responses.refresh(SystemTime::now());
        let now = self.core.now;
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.closing || entry.conn.deadline() > now {
                continue;
            }
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.handle_timeout(&mut ctx);
            self.drive(slot, generation)?;
        }
        self.accepts_starved = false;
        self.sweep_listener()?;
        self.arm_accepts()?;
        self.arm_tick()
    }

    /// Takes what waits in the listen queue with plain accepts, once a tick.
    /// A wake-up meant for the waiters on a shared listener can go to one
    /// that is going away (a process exiting with accepts armed): the
    /// connection would then wait for the next one to wake somebody.
    fn sweep_listener(&mut self) -> io::Result<()> {
        if self.core.draining {
            return Ok(());
        }
        while self.conns.vacant() > self.accepts_armed as usize {
            let Some(listener) = self.core.sources.listener.as_ref() else { break };
            match socket::accept(listener.as_fd()) {
                Ok(Some(fd)) => {
                    self.adopt(RingSocket::Plain(fd), Origin::Accepted)?;
                }
                Ok(None) => break,
                Err(e) if e.raw_os_error().is_some_and(crate::sys::out_of_resources) => {
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
