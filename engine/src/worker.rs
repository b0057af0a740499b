//! The worker loop: one ring, one `submit_and_wait` per turn, completions
//! handled in a batch, every submission they cause sent with the next turn.
//!
//! Connections come from a listener (single-shot accepts kept outstanding:
//! a multishot accept on a listener shared by several rings would send every
//! connection to one of them) and from the master's channel (fds over
//! `SCM_RIGHTS`); both end in [`Worker::adopt`], so a handed-over connection
//! is served exactly like an accepted one.

use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::time::SystemTime;

use io_uring::types::{CancelBuilder, Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use crate::backend::Backend;
use crate::bufring::{self, BufRing};
use crate::channel::{send_ack, Ack, Message, Tag, MAX_FDS};
use crate::config::EngineConfig;
use crate::conn::{Conn, Timer};
use crate::errno;
use crate::http::{Limits, Reply, Step};
use crate::response::Responses;
use crate::slab::Slab;
use crate::stats::{CountersSnapshot, WorkerCounters, STATE_DRAINING, STATE_READY, STATE_STOPPED};
use crate::sys::{half_close, now_ms, own_fd};
use crate::token::{self, Op};
use crate::uring::{self, Completion};

/// How often the worker checks deadlines and the `Date`.
const TICK_MS: u64 = 100;
/// How long a closing connection waits for the client's FIN after ours.
const LINGER_MS: u64 = 2_000;
/// How long a draining worker keeps an idle connection for a request already on its way.
const DRAIN_GRACE_MS: u64 = 100;

/// Where a worker's connections come from, and what tells it to stop.
#[derive(Debug, Default)]
pub struct Sources {
    /// A listening socket to accept on (`shared` mode, or a lone worker).
    pub listener: Option<OwnedFd>,
    /// The master's end of the channel sends connections and `Drain` here (`rr` mode);
    /// its end of stream means the master is gone, and the worker drains.
    pub channel: Option<OwnedFd>,
    /// Readable means "drain and exit" (a signalfd, an eventfd).
    pub shutdown: Option<OwnedFd>,
}

/// Runs one worker until it has drained; `counters` is its slot in the stats block.
///
/// Call it on the thread that will run the loop: the ring is created here and
/// is single-issuer.
pub fn run(config: &EngineConfig, sources: Sources, counters: &WorkerCounters) -> io::Result<()> {
    match config.backend {
        Backend::Uring => Worker::new(config, sources, counters)?.serve(),
        Backend::Epoll => Err(io::Error::new(io::ErrorKind::Unsupported, "the epoll worker driver is not built yet")),
    }
}

struct Worker<'a> {
    // Dropped first: the kernel stops using the buffers and pages below.
    ring: IoUring,
    bufs: BufRing,
    conns: Slab<Conn>,
    /// Per-slot room for an incomplete header block: slot `i` owns
    /// `carry[i * carry_cap..(i + 1) * carry_cap]`.
    carry: Box<[u8]>,
    carry_cap: usize,
    responses: Responses,
    limits: Limits,
    config: &'a EngineConfig,
    sources: Sources,
    inbox: Box<Message>,
    tick: Box<Timespec>,
    counters: &'a WorkerCounters,
    counts: CountersSnapshot,
    accepts_armed: u32,
    /// An accept ran out of fds or memory: no new accepts until the next tick.
    accepts_starved: bool,
    /// The master's channel is still open: a draining worker waits for its end
    /// of stream, so connections the master sent before `Drain` are all served.
    channel_open: bool,
    draining: bool,
    drain_deadline: u64,
    now: u64,
    completions: Vec<Completion>,
}

impl<'a> Worker<'a> {
    fn new(config: &'a EngineConfig, sources: Sources, counters: &'a WorkerCounters) -> io::Result<Self> {
        let ring = uring::build_ring(config.ring_entries)?;
        let bufs = BufRing::register(&ring.submitter(), config.recv_buffers, config.recv_buffer_size)?;
        let carry_cap = config.max_header.max(1024);
        let mut counts = counters.snapshot();
        counts.live = 0;
        counters.pid.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        let completions_cap = ring.params().cq_entries() as usize;
        Ok(Worker {
            ring,
            bufs,
            conns: Slab::new(config.max_conns, Conn::new),
            // Zeroed memory comes from the kernel lazily: only the slots used get pages.
            carry: vec![0u8; config.max_conns * carry_cap].into_boxed_slice(),
            carry_cap,
            responses: Responses::new(&config.body, SystemTime::now()),
            limits: config.limits(),
            config,
            channel_open: sources.channel.is_some(),
            sources,
            inbox: Message::new(),
            tick: Box::new(Timespec::new().nsec((TICK_MS * 1_000_000) as u32)),
            counters,
            counts,
            accepts_armed: 0,
            accepts_starved: false,
            draining: false,
            drain_deadline: 0,
            now: now_ms(),
            completions: Vec::with_capacity(completions_cap),
        })
    }

    fn serve(&mut self) -> io::Result<()> {
        self.arm_accepts()?;
        self.arm_channel()?;
        if let Some(shutdown) = &self.sources.shutdown {
            let poll = opcode::PollAdd::new(Fd(shutdown.as_raw_fd()), libc::POLLIN as u32).build();
            self.push(poll.user_data(token::encode(Op::Shutdown, 0, 0)))?;
        }
        self.arm_tick()?;
        self.counters.set_state(STATE_READY);
        loop {
            self.publish();
            let drained = self.conns.is_empty() && !self.channel_open;
            if self.draining && (drained || self.now >= self.drain_deadline) {
                break;
            }
            uring::submit_and_wait(&mut self.ring)?;
            self.now = now_ms();
            uring::reap(&mut self.ring, &mut self.completions);
            for i in 0..self.completions.len() {
                let (user_data, result, flags) = self.completions[i];
                self.complete(user_data, result, flags)?;
            }
            // Slots freed in this turn make room for accepts again.
            self.arm_accepts()?;
        }
        // Hand the last closes to the kernel before the ring goes.
        self.ring.submit()?;
        self.counts.live = 0;
        self.counters.store(&self.counts);
        self.counters.set_state(STATE_STOPPED);
        Ok(())
    }

    fn publish(&mut self) {
        self.counts.live = self.conns.len() as u64;
        self.counts.heartbeat += 1;
        self.counters.store(&self.counts);
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every pointer an entry carries (msghdrs, iovecs, response pages,
        // the tick timespec) points into the worker, whose slabs and boxes do not
        // move or free that memory until the op's completion is reaped or the
        // ring is dropped.
        unsafe { uring::push(&mut self.ring, &entry) }
    }

    /// Submits an op whose success needs no handling (close, cancel, shutdown):
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
        }
    }

    // --- sources of connections -------------------------------------------------

    fn arm_accepts(&mut self) -> io::Result<()> {
        let Some(listener) = self.sources.listener.as_ref().map(|l| l.as_raw_fd()) else { return Ok(()) };
        // Never more accepts armed than free slots: a full worker stops
        // accepting, and the connections wait for a worker with room.
        let room = self.conns.vacant().min(self.config.accepts_outstanding as usize) as u32;
        while !self.draining && !self.accepts_starved && self.accepts_armed < room {
            let accept = opcode::Accept::new(Fd(listener), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build();
            self.push(accept.user_data(token::encode(Op::Accept, 0, 0)))?;
            self.accepts_armed += 1;
        }
        Ok(())
    }

    fn on_accept(&mut self, result: i32) -> io::Result<()> {
        self.accepts_armed -= 1;
        if result >= 0 {
            // SAFETY: a successful accept returns a new fd that nothing else owns.
            let fd = unsafe { own_fd(result) };
            self.adopt(fd)?;
        } else if errno::is_out_of_resources(-result) {
            // Out of descriptors or memory: retrying now would spin; the tick re-arms.
            if errno::is_out_of_fds(-result) {
                self.counts.fd_limit_hits += 1;
            }
            self.accepts_starved = true;
            return Ok(());
        }
        self.arm_accepts()
    }

    fn arm_channel(&mut self) -> io::Result<()> {
        let Some(channel) = self.sources.channel.as_ref().map(|c| c.as_raw_fd()) else { return Ok(()) };
        let header = self.inbox.prepare_recv();
        let recv = opcode::RecvMsg::new(Fd(channel), header).flags(libc::MSG_CMSG_CLOEXEC as u32).build();
        self.push(recv.user_data(token::encode(Op::Channel, 0, 0)))
    }

    fn on_channel(&mut self, result: i32) -> io::Result<()> {
        if result == 0 || (result < 0 && result != -libc::EINTR) {
            // The master is gone or done with us (or the channel broke): finish up and exit.
            self.channel_open = false;
            return self.start_drain();
        }
        if result < 0 {
            return self.arm_channel();
        }
        let mut fds: [Option<OwnedFd>; MAX_FDS] = [const { None }; MAX_FDS];
        let mut count = 0;
        // SAFETY: called once for this completed recvmsg, with its result.
        let received = unsafe {
            self.inbox.take_received(result as usize, &mut |fd| {
                if count < MAX_FDS {
                    fds[count] = Some(fd);
                    count += 1;
                }
            })
        };
        if received.truncated || count < received.sent {
            // At the open-file limit: the kernel dropped the rest of the batch.
            // The master still holds those connections and hands them on.
            self.counts.fd_limit_hits += 1;
        }
        let mut adopted = 0;
        let mut full = false;
        for fd in fds.iter_mut().take(count).filter_map(Option::take) {
            // Adopted in order, so the adopted fds are a prefix of the batch: once
            // one is declined (full), the rest are declined too. Declining closes
            // only our copy; the master's keeps the connection open.
            if full {
                self.counts.rejected += 1;
                continue;
            }
            if self.adopt(fd)? {
                adopted += 1;
            } else {
                full = true;
            }
        }
        if received.tag == Some(Tag::Connections) {
            // Every batch is settled exactly once, whatever arrived: the master
            // closes its copies of the adopted prefix and re-routes the rest.
            if let Some(channel) = self.sources.channel.as_ref() {
                let ack = Ack { received: count as u16, adopted: adopted as u16 };
                if send_ack(channel.as_fd(), ack).is_err() {
                    self.channel_open = false;
                    return self.start_drain();
                }
            }
        }
        if received.tag == Some(Tag::Drain) {
            self.start_drain()?;
        }
        self.arm_channel()
    }

    /// Takes a connection into the slab and starts receiving on it; false
    /// (and `fd` closed) when every slot is taken.
    fn adopt(&mut self, fd: OwnedFd) -> io::Result<bool> {
        let Some((slot, generation)) = self.conns.insert() else {
            self.counts.rejected += 1;
            return Ok(false);
        };
        let deadline = self.now + self.config.header_timeout.as_millis() as u64;
        if let Some(conn) = self.conns.get_mut(slot, generation) {
            conn.open(fd.into_raw_fd(), deadline);
        }
        self.counts.accepted += 1;
        self.arm_recv(slot, generation)?;
        Ok(true)
    }

    // --- receiving ------------------------------------------------------------------

    fn arm_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        conn.receiving = true;
        let recv = opcode::RecvMulti::new(Fd(conn.fd), bufring::GROUP).build();
        self.push(recv.user_data(token::encode(Op::Recv, slot, generation)))
    }

    fn on_recv(&mut self, slot: u32, generation: u32, result: i32, flags: u32) -> io::Result<()> {
        let buffer = cqueue::buffer_select(flags);
        let Some(conn) = self.conns.get_mut(slot, generation) else {
            if let Some(bid) = buffer {
                self.bufs.recycle(bid);
            }
            return Ok(());
        };
        if !cqueue::more(flags) {
            conn.receiving = false;
        }
        match (result, buffer) {
            (len, Some(bid)) if len > 0 => {
                // SAFETY: `bid` was just handed to us by this completion and is
                // recycled only after `data` is last used.
                let data = unsafe { self.bufs.filled(bid, len as usize) };
                let handled = self.on_input(slot, generation, data, cqueue::sock_nonempty(flags));
                self.bufs.recycle(bid);
                handled?;
            }
            (0, _) => self.on_peer_closed(slot, generation)?,
            // Out of receive buffers, or cancelled by us: re-armed below if still wanted.
            (e, _) if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
            _ => self.begin_close(slot, generation)?,
        }
        self.resume_receiving(slot, generation)
    }

    /// Re-arms a multishot receive that ended, unless the connection no longer reads.
    fn resume_receiving(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        if !conn.receiving && !conn.paused && !conn.peer_closed {
            self.arm_recv(slot, generation)?;
        }
        Ok(())
    }

    /// Handles received bytes; `more_waiting` says the socket holds more already.
    fn on_input(&mut self, slot: u32, generation: u32, data: &[u8], more_waiting: bool) -> io::Result<()> {
        let base = slot as usize * self.carry_cap;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
            if conn.closing || conn.lingering || conn.close_after_send {
                // Everything after a closing reply is discarded; closing with it
                // unread would reset the connection, so wait for the client's FIN.
                conn.linger = true;
                break;
            }
            if conn.carry_len == 0 && !conn.paused {
                // The common case: parse straight from the receive buffer.
                let used = feed(conn, rest, &self.limits);
                rest = &rest[used..];
                if rest.is_empty() || conn.close_after_send {
                    break;
                }
                // An incomplete header block, or input held while replies drain.
                let keep = rest.len().min(self.carry_cap);
                self.carry[base..base + keep].copy_from_slice(&rest[..keep]);
                conn.carry_len = keep;
                rest = &rest[keep..];
                continue;
            }
            let room = self.carry_cap - conn.carry_len;
            if room == 0 {
                // Held input overflowed: the client sends without reading our replies.
                return self.begin_close(slot, generation);
            }
            let take = room.min(rest.len());
            let at = base + conn.carry_len;
            self.carry[at..at + take].copy_from_slice(&rest[..take]);
            conn.carry_len += take;
            rest = &rest[take..];
            if !conn.paused {
                self.parse_carry(slot, generation);
            }
        }
        if self.draining && !more_waiting {
            self.close_after_last_answer(slot, generation);
        }
        self.after_progress(slot, generation)
    }

    /// While draining, once a read has emptied the socket and left no partial
    /// request, the last queued answer carries `Connection: close` and the
    /// connection closes after it: every request the client sent before is
    /// answered, and the client learns not to send more.
    fn close_after_last_answer(&mut self, slot: u32, generation: u32) {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return };
        let settled = conn.carry_len == 0 && conn.parser.between_requests() && !conn.paused;
        if settled && !conn.close_after_send && conn.replies.close_last() {
            conn.close_after_send = true;
            conn.linger = true;
        }
    }

    /// Parses what the carry buffer holds and keeps the unparsed tail.
    fn parse_carry(&mut self, slot: u32, generation: u32) {
        let base = slot as usize * self.carry_cap;
        let Some(conn) = self.conns.get_mut(slot, generation) else { return };
        let held = conn.carry_len;
        let used = feed(conn, &self.carry[base..base + held], &self.limits);
        if conn.close_after_send {
            conn.carry_len = 0;
            return;
        }
        self.carry.copy_within(base + used..base + held, base);
        conn.carry_len = held - used;
    }

    /// After input or a send: pause, send, time and close as the state asks.
    fn after_progress(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.closing {
            return Ok(());
        }
        if conn.paused && conn.receiving {
            // Stop reading until the queued replies are sent (back-pressure).
            let cancel = opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build();
            self.push_ignored(cancel)?;
        }
        self.flush(slot, generation)?;
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.closing || conn.lingering {
            return Ok(());
        }
        if conn.is_idle() && conn.peer_closed {
            return self.begin_close(slot, generation);
        }
        self.refresh_deadline(slot, generation);
        if self.draining && conn_is_idle(&self.conns, slot, generation) {
            // Answered everything it had: closed by the tick after a short grace
            // (a request may be on its way), as idle connections are at drain start.
            self.shorten_to_drain_grace(slot, generation);
        }
        Ok(())
    }

    fn refresh_deadline(&mut self, slot: u32, generation: u32) {
        let header = self.config.header_timeout.as_millis() as u64;
        let idle = self.config.idle_timeout.as_millis() as u64;
        let now = self.now;
        let Some(conn) = self.conns.get_mut(slot, generation) else { return };
        let busy = conn.sending || !conn.replies.is_empty() || !conn.parser.between_requests();
        if !busy && conn.carry_len > 0 {
            // A header block in progress: its clock started with its first byte.
            if conn.timer != Timer::Header {
                conn.timer = Timer::Header;
                conn.deadline = now + header;
            }
        } else {
            conn.timer = Timer::Idle;
            conn.deadline = now + idle;
        }
    }

    fn on_peer_closed(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        conn.peer_closed = true;
        if conn.lingering || (conn.replies.is_empty() && !conn.sending) {
            return self.begin_close(slot, generation);
        }
        // Answer what was asked, then close.
        conn.close_after_send = true;
        Ok(())
    }

    // --- sending --------------------------------------------------------------------

    fn flush(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.sending || conn.closing || !conn.outgoing.fill(&mut conn.replies, &mut self.responses) {
            return Ok(());
        }
        conn.sending = true;
        let send = opcode::SendMsg::new(Fd(conn.fd), conn.outgoing.header()).flags(libc::MSG_NOSIGNAL as u32).build();
        self.push(send.user_data(token::encode(Op::Send, slot, generation)))
    }

    fn on_send(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        conn.sending = false;
        if result < 0 || conn.closing {
            conn.outgoing.finish(&mut self.responses);
            self.begin_close(slot, generation)?;
            self.release_if_done(slot, generation);
            return Ok(());
        }
        if !conn.outgoing.advance(result as usize) {
            // A partial send (a slow reader): send the rest from where it stopped.
            conn.sending = true;
            let send =
                opcode::SendMsg::new(Fd(conn.fd), conn.outgoing.header()).flags(libc::MSG_NOSIGNAL as u32).build();
            self.refresh_deadline(slot, generation);
            return self.push(send.user_data(token::encode(Op::Send, slot, generation)));
        }
        // Counted once the answers are with the kernel, not when they are parsed.
        self.counts.requests += u64::from(conn.outgoing.finish(&mut self.responses));
        if conn.paused {
            // Replies drained: take up the held input again.
            conn.paused = false;
            self.parse_carry(slot, generation);
        }
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.replies.is_empty() && conn.close_after_send {
            return if conn.linger { self.start_linger(slot, generation) } else { self.begin_close(slot, generation) };
        }
        self.after_progress(slot, generation)?;
        self.resume_receiving(slot, generation)
    }

    // --- closing --------------------------------------------------------------------

    /// Half-closes after the last reply and waits briefly for the client's FIN,
    /// so unread input does not turn our close into a reset that eats the reply.
    fn start_linger(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        conn.lingering = true;
        conn.paused = false;
        conn.timer = Timer::Linger;
        conn.deadline = now + LINGER_MS;
        let fd = conn.fd;
        if conn.peer_closed {
            return self.begin_close(slot, generation);
        }
        let receiving = conn.receiving;
        // A direct call, not a ring op: the kernel may run an io_uring shutdown
        // later in a worker thread and look the fd number up only then, when
        // the number may already belong to the next connection. This path is
        // rare (errors, drains), so the syscall costs nothing that matters.
        half_close(fd);
        if !receiving {
            self.arm_recv(slot, generation)?;
        }
        Ok(())
    }

    /// Closes the socket through the ring and cancels its ops; the slot is
    /// given back once they have all completed.
    fn begin_close(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if conn.closing {
            return Ok(());
        }
        conn.closing = true;
        let (fd, receiving, sending) = (conn.fd, conn.receiving, conn.sending);
        conn.fd = -1;
        if receiving {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build())?;
        }
        if sending {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Send, slot, generation)).build())?;
        }
        self.push_ignored(opcode::Close::new(Fd(fd)).build())?;
        self.release_if_done(slot, generation);
        Ok(())
    }

    fn release_if_done(&mut self, slot: u32, generation: u32) {
        if let Some(conn) = self.conns.get_mut(slot, generation) {
            if conn.closing && !conn.receiving && !conn.sending {
                self.conns.remove(slot);
            }
        }
    }

    // --- time and draining ------------------------------------------------------------

    fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token::encode(Op::Tick, 0, 0)))
    }

    fn on_tick(&mut self) -> io::Result<()> {
        self.responses.refresh(SystemTime::now());
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let now = self.now;
            let expired = self.conns.get_mut(slot, generation).is_some_and(|c| !c.closing && c.deadline <= now);
            if expired {
                self.begin_close(slot, generation)?;
            }
        }
        self.accepts_starved = false;
        self.arm_accepts()?;
        self.arm_tick()
    }

    fn start_drain(&mut self) -> io::Result<()> {
        if self.draining {
            return Ok(());
        }
        self.draining = true;
        self.drain_deadline = self.now + self.config.drain_timeout.as_millis() as u64;
        self.counters.set_state(STATE_DRAINING);
        if self.accepts_armed > 0 {
            let all_accepts = CancelBuilder::user_data(token::encode(Op::Accept, 0, 0)).all();
            self.push_ignored(opcode::AsyncCancel2::new(all_accepts).build())?;
        }
        // Idle keep-alive connections close after a short grace, not at once:
        // a request the client sent before the drain may sit in a completion of
        // this very batch, not yet handled. Whatever arrives meanwhile is
        // answered with `Connection: close`; the tick closes the rest.
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            if conn_is_idle(&self.conns, slot, generation) {
                self.shorten_to_drain_grace(slot, generation);
            }
        }
        Ok(())
    }

    fn shorten_to_drain_grace(&mut self, slot: u32, generation: u32) {
        let grace = self.now + DRAIN_GRACE_MS;
        if let Some(conn) = self.conns.get_mut(slot, generation) {
            conn.deadline = conn.deadline.min(grace);
        }
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        // Connections still open when the loop ends (drain timeout, an error) are
        // closed here; those already closing had their close submitted.
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            if let Some(conn) = self.conns.get_mut(slot, generation) {
                if !conn.closing && conn.fd >= 0 {
                    // SAFETY: the connection owns `fd` and nothing closes it after this.
                    unsafe { libc::close(conn.fd) };
                    conn.fd = -1;
                }
            }
        }
    }
}

/// Parses requests from `input` into the connection's reply queue; returns
/// the bytes used. Stops at an incomplete header block, a closing reply, or a
/// full queue (then the connection is marked paused).
fn feed(conn: &mut Conn, input: &[u8], limits: &Limits) -> usize {
    let mut at = 0;
    while at < input.len() {
        if conn.replies.is_full() {
            conn.paused = true;
            break;
        }
        match conn.parser.step(&input[at..], limits) {
            Step::NeedMore => break,
            Step::Advance { consumed, reply } => {
                at += consumed;
                let Some(reply) = reply else { continue };
                conn.replies.push(reply);
                if reply.closes() {
                    conn.close_after_send = true;
                    // A client that asked to close and sent nothing after gets a
                    // plain close (the server's FIN first, no wait). When the server
                    // decides (an error) the client may still be sending: closing on
                    // unread input would reset the connection and could destroy the
                    // reply, so the close lingers for the client's FIN.
                    let client_asked = matches!(reply, Reply::OkClose | Reply::HeadClose);
                    conn.linger = !(client_asked && at == input.len());
                    return input.len();
                }
            }
        }
    }
    at
}

fn conn_is_idle(conns: &Slab<Conn>, slot: u32, generation: u32) -> bool {
    conns.get(slot, generation).is_some_and(|c| !c.closing && c.is_idle())
}
