//! What both drivers keep besides their connections and their kernel
//! interface: the preformatted replies, the carry and output buffers, the
//! counters, draining, the injected faults, and the master's channel
//! (batches in, acks out).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime};

use super::idle::IdleList;
use super::late_closes::LateCloses;
use super::{Origin, Sources, CARRY_MIN};
use crate::answer::{Answering, BodyPool, Dynamic, ResponseScratch};
use crate::channel::{send_wake, Ack, Acks, Message, Received, Tag, MAX_FDS};
use crate::config::EngineConfig;
use crate::conn::{Connection, Context, Timeouts};
use crate::handler::Handler;
use crate::http::Limits;
use crate::response::Responses;
use crate::stats::{CountersSnapshot, WorkerCounters, STATE_DRAINING, STATE_READY, STATE_STOPPED};
use crate::sys::now_ms;

/// What both drivers keep besides their connections and their kernel interface.
pub(super) struct Core<'a> {
    pub(super) config: &'a EngineConfig,
    pub(super) sources: Sources,
    pub(super) handler: &'a mut dyn Handler,
    /// The handler has a fixed body: answer from the preformatted pages.
    pub(super) fixed: bool,
    pub(super) scratch: ResponseScratch,
    pub(super) bodies: BodyPool,
    /// Per-slot output buffers for the handler's framed responses: slot `i`
    /// owns `out[i * out_cap..(i + 1) * out_cap]` (empty with a fixed body).
    pub(super) out: Box<[u8]>,
    pub(super) out_cap: usize,
    pub(super) responses: Responses,
    pub(super) limits: Limits,
    pub(super) timeouts: Timeouts,
    /// Per-slot room for an incomplete header block: slot `i` owns
    /// `carry[i * carry_cap..(i + 1) * carry_cap]`.
    pub(super) carry: Box<[u8]>,
    pub(super) carry_cap: usize,
    pub(super) counters: &'a WorkerCounters,
    pub(super) counts: CountersSnapshot,
    /// Connections the worker can hold while descriptors last: `--max-conns`,
    /// or its ring's smaller table of direct descriptors.
    capacity: u64,
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
    /// When the injected stall begins, until it has happened.
    pub(super) stall_at: Option<u64>,
}

/// A batch of connections from the master, owned now.
pub(super) struct Batch {
    pub(super) fds: [Option<OwnedFd>; MAX_FDS],
    pub(super) received: Received,
}

impl Batch {
    /// Connections the master sent that the kernel could not install (the
    /// worker at its open-file limit): the master hands them on, and the
    /// worker closes as many idle connections so that the next ones fit.
    pub(super) fn short(&self) -> usize {
        short_of(&self.received)
    }
}

/// Fds a `Connections` message lost on the way (for a `Text` one, `sent`
/// is its length, not a count of fds).
fn short_of(received: &Received) -> usize {
    match received.tag {
        Some(Tag::Connections) => received.sent.saturating_sub(received.fds),
        _ => 0,
    }
}

impl<'a> Core<'a> {
    pub(super) fn new(
        config: &'a EngineConfig,
        sources: Sources,
        counters: &'a WorkerCounters,
        handler: &'a mut dyn Handler,
    ) -> Core<'a> {
        // Room for an incomplete header block, and for input held while a
        // connection waits for its replies to go out.
        let carry_cap = config.max_header.max(CARRY_MIN);
        let fixed_body = handler.fixed_body().map(<[u8]>::to_vec);
        let fixed = fixed_body.is_some();
        // Zeroed memory comes from the kernel lazily: only buffers used get pages.
        let (scratch, bodies, out_cap) = if fixed {
            (ResponseScratch::new(0), BodyPool::new(0, 0), 0)
        } else {
            let scratch = ResponseScratch::new(config.max_response);
            // Room for two of the largest responses: pipelined answers go out together.
            let out_cap = 2 * scratch.largest_framed();
            let body_size = config.max_header + usize::try_from(config.max_body).unwrap_or(usize::MAX);
            (scratch, BodyPool::new(config.body_buffers, body_size), out_cap)
        };
        let mut counts = counters.snapshot();
        counts.live = 0;
        counts.capacity = config.max_conns as u64;
        // Before the worker is ready: the master never judges it by a capacity left from another process.
        counters.capacity.store(counts.capacity, std::sync::atomic::Ordering::Relaxed);
        counters.pid.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        let millis = |d: Duration| d.as_millis() as u64;
        Core {
            config,
            channel_open: sources.channel.is_some(),
            sources,
            handler,
            fixed,
            scratch,
            bodies,
            out: vec![0u8; config.max_conns * out_cap].into_boxed_slice(),
            out_cap,
            responses: Responses::new(fixed_body.as_deref().unwrap_or_default(), SystemTime::now()),
            limits: config.limits(),
            timeouts: Timeouts {
                header_ms: millis(config.header_timeout),
                body_ms: millis(config.body_timeout),
                idle_ms: millis(config.idle_timeout),
            },
            // Zeroed memory comes from the kernel lazily: only the slots used get pages.
            carry: vec![0u8; config.max_conns * carry_cap].into_boxed_slice(),
            carry_cap,
            counters,
            capacity: counts.capacity,
            fd_capped: None,
            counts,
            inbox: Message::new(),
            acks: Acks::new(),
            acks_settled: counters.acks.settled(),
            late_closes: LateCloses::new(),
            idle: IdleList::new(config.max_conns),
            full_queue_at_tick: false,
            draining: false,
            drain_deadline: 0,
            now: now_ms(),
            stall_at: None,
        }
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
            })
        };
        let context = Context {
            now: self.now,
            limits: self.limits,
            timeouts: self.timeouts,
            responses: &mut self.responses,
            draining: self.draining,
            answering,
            out: &mut self.out[out_base..out_base + self.out_cap],
            health_path: self.config.health_path.as_deref().map(str::as_bytes),
            healthy: !self.draining && !self.counters.is_lame_duck(),
        };
        (carry, context)
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

    /// Injected faults: the time a slow handler would spend on `requests`.
    pub(super) fn work_for(&self, requests: u32) {
        let Some(per_request) = self.config.faults.per_request else { return };
        if requests == 0 {
            return;
        }
        let until = std::time::Instant::now() + per_request * requests;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    /// Connections the worker can hold while descriptors last.
    pub(super) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Lowers what the worker can hold to `capacity` (its ring's table of
    /// direct descriptors is smaller than `--max-conns`), published at once:
    /// it is called before the worker is ready.
    pub(super) fn limit_capacity(&mut self, capacity: usize) {
        self.capacity = self.capacity.min(capacity as u64);
        self.counts.capacity = self.capacity;
        self.counters.capacity.store(self.capacity, std::sync::atomic::Ordering::Relaxed);
    }

    /// An accept found no descriptor free with `live` connections open: the
    /// worker is full at that many until the tick finds a descriptor free
    /// again; each connection that closes before then makes room for one.
    pub(super) fn hit_fd_limit(&mut self, live: usize) {
        self.counts.fd_limit_hits += 1;
        self.fd_capped = Some(live as u64);
    }

    /// A batch from the master lost fds on the way ([`Batch::short`]: the
    /// worker at its open-file limit, `rr` and `least`) with `live`
    /// connections open before any idle one was closed for them: full at
    /// that many, as after an accept's `EMFILE` ([`Core::hit_fd_limit`],
    /// the hit counted as the batch was taken). Else the master went on
    /// offering it each new connection, each offer's fds dropped and
    /// handed on again, with the stats showing room (`capacity` at
    /// `--max-conns`) where there was none.
    pub(super) fn batch_hit_fd_limit(&mut self, live: usize) {
        self.fd_capped = Some(live as u64);
    }

    /// Once a tick, at the open-file limit: a descriptor free again (a closed
    /// connection's, or a late close's) lifts the cap. Looked for by
    /// duplicating the listener or the channel, closed at once.
    pub(super) fn recheck_fd_limit(&mut self) {
        if self.fd_capped.is_none() {
            return;
        }
        let source = self.sources.listener.as_ref().or(self.sources.channel.as_ref());
        if source.is_some_and(|fd| fd.as_fd().try_clone_to_owned().is_ok()) {
            self.fd_capped = None;
        }
    }

    /// Idle connections the worker would close to make room: none while
    /// it drains (it takes nothing new then).
    pub(super) fn reclaimable(&self) -> usize {
        if self.draining {
            0
        } else {
            self.idle.aged_len()
        }
    }

    /// On the tick: how many of its longest-idle connections a worker
    /// should close so that it can accept again. Some only when it is full
    /// (no `room` in its slots or table, or at its open-file limit still)
    /// and holds idle ones, and connections have waited on its listener
    /// since the last tick: what waits only a moment is left alone, since in
    /// `shared` mode a worker with room takes it when its loop turns.
    pub(super) fn reclaims_due(&mut self, room: usize) -> usize {
        let full = room == 0 || self.fd_capped.is_some();
        if !full || self.reclaimable() == 0 {
            self.full_queue_at_tick = false;
            return 0;
        }
        let Some(listener) = self.sources.listener.as_ref() else { return 0 };
        // A failed look (a signal) only puts it off to the next tick.
        let queue = crate::sys::socket::waiting(listener.as_fd()).unwrap_or(false);
        let waited = queue && self.full_queue_at_tick;
        self.full_queue_at_tick = queue;
        if waited {
            super::idle::reclaim_batch(self.capacity())
        } else {
            0
        }
    }

    /// What the worker can hold now: its capacity, or what it held when it
    /// found itself at its open-file limit.
    fn capacity_now(&self) -> u64 {
        self.fd_capped.map_or(self.capacity, |cap| cap.min(self.capacity))
    }

    /// Publishes the counters once per loop turn (the heartbeat moves).
    fn publish(&mut self, live: usize) {
        self.idle.advance(self.now);
        self.counts.capacity = self.capacity_now();
        self.counts.live = live as u64;
        self.counts.reclaimable = self.reclaimable() as u64;
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

    /// Begins the drain; false when it had begun already.
    pub(super) fn start_drain(&mut self) -> bool {
        if self.draining {
            return false;
        }
        self.draining = true;
        self.drain_deadline = self.now + self.config.drain_timeout.as_millis() as u64;
        self.counters.set_state(STATE_DRAINING);
        true
    }

    /// Readies `conn` in slot `slot` for a connection just taken, and counts it;
    /// one taken as the drain began (its accept raced the cancel) is drained
    /// like the others, not kept to the drain's deadline.
    pub(super) fn open_connection(&mut self, conn: &mut Connection, slot: u32, origin: Origin) {
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

    /// Takes the connections of a message of `len` bytes just received into
    /// the inbox.
    pub(super) fn take_batch(&mut self, len: usize) -> Batch {
        let mut fds: [Option<OwnedFd>; MAX_FDS] = [const { None }; MAX_FDS];
        let mut count = 0;
        // SAFETY: called once per completed recvmsg into the inbox, with its length.
        let received = unsafe {
            self.inbox.take_received(len, &mut |fd| {
                if count < MAX_FDS {
                    fds[count] = Some(fd);
                    count += 1;
                }
            })
        };
        if short_of(&received) > 0 || (received.truncated && received.tag == Some(Tag::Connections)) {
            // At the open-file limit: the kernel dropped the rest of the batch.
            // The master still holds those connections and hands them on.
            self.counts.fd_limit_hits += 1;
        }
        Batch { fds, received }
    }

    /// Settles a batch once it is adopted: every `Connections` message gets
    /// exactly one ack, whatever arrived. The ack waits for the next
    /// [`Core::flush_acks`], which must come before the batch's connections
    /// are read (a worker that dies serving them takes them along): both
    /// loops flush at once and only then drive the batch's connections.
    /// A `Text` message asks for no ack: its line
    /// goes to the handler. `live`: the connections open now, the batch's
    /// included. False when the master is gone.
    pub(super) fn acknowledge(&mut self, received: &Received, adopted: usize, live: usize) -> bool {
        if received.tag == Some(Tag::Text) {
            // The master sends only text it read as UTF-8 (a control command).
            if let Ok(text) = std::str::from_utf8(self.inbox.text(received)) {
                self.handler.on_message(text);
            }
            return true;
        }
        if received.tag != Some(Tag::Connections) || self.sources.channel.is_none() {
            return true;
        }
        let ack = Ack { received: received.fds as u16, adopted: adopted as u16 };
        if self.acks.push(ack) {
            return true;
        }
        // A full message: send it and start the next.
        let sent = self.flush_acks(live);
        self.acks.push(ack);
        sent
    }

    /// Publishes the acks gathered this turn, if any, in the shared slot
    /// (once per loop turn, before the loop waits), `live` (the connections
    /// open now) first: the master stops counting the acknowledged
    /// connections as handed over when it reads the acks, and must find them
    /// counted as live by then, else for a moment they are counted nowhere
    /// and the next connections go to this worker as if it had room for
    /// them. A message goes to the master only when it asked for one (it
    /// waits for these acks). False when the master is gone.
    pub(super) fn flush_acks(&mut self, live: usize) -> bool {
        if self.acks.is_empty() {
            return true;
        }
        self.counts.live = live as u64;
        self.counters.live.store(self.counts.live, std::sync::atomic::Ordering::Relaxed);
        // And the capacity: a batch that lost fds made the worker full
        // (`batch_hit_fd_limit`), which the master must see with the ack.
        self.counts.capacity = self.capacity_now();
        self.counters.capacity.store(self.counts.capacity, std::sync::atomic::Ordering::Relaxed);
        // With it, what the connections adopted this turn left to reclaim.
        self.counts.reclaimable = self.reclaimable() as u64;
        self.counters.reclaimable.store(self.counts.reclaimable, std::sync::atomic::Ordering::Relaxed);
        let wake = self.counters.acks.publish(self.acks_settled, self.acks.as_slice());
        self.acks_settled += self.acks.as_slice().len() as u64;
        self.acks.clear();
        match self.sources.channel.as_ref() {
            Some(channel) if wake => send_wake(channel.as_fd()).is_ok(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::channel::channel_pair;
    use crate::driver::Sources;
    use crate::handler::FixedBody;
    use crate::stats::StatsBlock;

    #[test]
    fn acks_are_published_with_their_connections_counted_live() {
        // The master stops counting a batch as handed over when it reads the
        // ack: the worker's live count must hold the batch by then, or for a
        // moment those connections count nowhere and more are dealt to it.
        let (master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig { max_conns: 4, ..EngineConfig::default() };
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler);
        core.publish(1);
        assert!(core.acks.push(Ack { received: 2, adopted: 2 }));
        assert!(core.acks.push(Ack { received: 1, adopted: 0 }));
        assert!(core.flush_acks(3), "the master's end is open");
        assert_eq!(counters.acks.settled(), 2, "both batches of the turn, at once");
        assert_eq!(counters.acks.ack(0), Ack { received: 2, adopted: 2 });
        assert_eq!(counters.acks.ack(1), Ack { received: 1, adopted: 0 });
        assert_eq!(counters.live.load(Ordering::Relaxed), 3, "the live count published with the acks");
        let master = UnixStream::from(master);
        master.set_nonblocking(true).expect("non-blocking");
        let mut message = [0u8; 8];
        assert!((&master).read(&mut message).is_err(), "no message: the master did not ask for one");
        // The master waits for the next ack: the worker wakes it, once.
        assert_eq!(counters.acks.ask_wake(2), 2, "no ack since");
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(core.flush_acks(4));
        assert_eq!((&master).read(&mut message).expect("the wake-up"), 1);
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(core.flush_acks(5));
        assert!((&master).read(&mut message).is_err(), "asked once, woken once");
        assert_eq!(counters.acks.settled(), 4);
        // A master that is gone cannot be woken: the worker learns it is gone.
        counters.acks.ask_wake(4);
        drop(master);
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(!core.flush_acks(6), "the master is gone");
    }

    #[test]
    fn a_line_of_text_from_the_master_is_no_batch_short_of_fds() {
        // A `Text` message's length field is its length: read as a count of
        // fds sent, every line (`ctl send`) counted as an fd-limit hit (the
        // master then warned that the worker was at its open-file limit),
        // and closed that many idle connections as if fds had been lost.
        let (master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig::default();
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler);
        // The master's side of `ctl send`: a `Text` message of the line.
        let mut line = Message::new();
        let header = line.prepare_send_text(b"reset the counts");
        // SAFETY: `header` points into `line`, alive and unmoved for the call.
        let sent = unsafe { libc::sendmsg(master.as_raw_fd(), header, 0) };
        assert!(sent > 0, "send a line: {}", std::io::Error::last_os_error());
        let channel = core.sources.channel.as_ref().expect("channel").as_fd();
        let len = crate::channel::recv_nonblocking(channel, &mut core.inbox).expect("recv").expect("a message");
        let batch = core.take_batch(len);
        assert_eq!(batch.received.tag, Some(Tag::Text));
        assert_eq!(batch.short(), 0, "a line carries no fds to lose");
        assert_eq!(core.counts.fd_limit_hits, 0, "nor is it an fd-limit hit");
    }

    #[test]
    fn out_of_descriptors_the_worker_publishes_itself_full_until_one_is_free() {
        // The master judges "full" by the published capacity: in `shared` mode
        // it answers 503 itself only once every worker shows full.
        let (_master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig { max_conns: 100, ..EngineConfig::default() };
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 100, "set before the worker is ready");
        core.limit_capacity(64);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 64, "a smaller table of direct descriptors");
        core.hit_fd_limit(23);
        core.publish(23);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 23, "full at what it holds");
        assert_eq!(counters.fd_limit_hits.load(Ordering::Relaxed), 1);
        // This test process has descriptors to spare: the tick lifts the cap.
        core.recheck_fd_limit();
        core.publish(22);
        assert_eq!(counters.capacity.load(Ordering::Relaxed), 64);
    }
}
