//! The worker: one event loop on io_uring (`uring.rs`) or epoll (`epoll.rs`)
//! around the same connection state machine, and what both loops share
//! (`Core`): the preformatted replies, the carry buffers, the counters,
//! draining, and the master's channel (batches in, acks out).
//!
//! Connections come from a listener (`shared` mode) and from the master's
//! channel (fds over `SCM_RIGHTS`); both end in the driver's `adopt`, so a
//! handed-over connection is served exactly like an accepted one.

mod epoll;
mod ring_socket;
mod uring;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime};

use crate::answer::{Answering, BodyPool, Dynamic, ResponseScratch};
use crate::backend::Backend;
use crate::channel::{send_acks, Ack, Acks, Message, Received, Tag, MAX_FDS};
use crate::config::EngineConfig;
use crate::conn::{Connection, Context, Timeouts};
use crate::handler::Handler;
use crate::http::Limits;
use crate::response::Responses;
use crate::stats::{CountersSnapshot, WorkerCounters, STATE_DRAINING, STATE_READY, STATE_STOPPED};
use crate::sys::now_ms;
use crate::tally::AcceptTally;

/// Smallest carry buffer per connection.
const CARRY_MIN: usize = 16 * 1024;

/// How often a worker checks deadlines and moves the `Date` on.
const TICK: Duration = Duration::from_millis(100);

/// Where a worker's connections come from, and what tells it to stop.
#[derive(Debug, Default)]
pub struct Sources {
    /// A listening socket to accept on (`shared` or `reuseport` mode, or a lone worker).
    pub listener: Option<OwnedFd>,
    /// The listener is this worker's own (`reuseport`): when it drains it
    /// accepts what is queued on it, then closes it, instead of leaving the
    /// queue to others (no other process accepts there).
    pub own_listener: bool,
    /// The master's end of the channel sends connections and `Drain` here (`rr` mode);
    /// its end of stream means the master is gone, and the worker drains.
    pub channel: Option<OwnedFd>,
    /// Readable means "drain and exit" (a signalfd, an eventfd).
    pub shutdown: Option<OwnedFd>,
    /// Where connections accepted on the own listener are added up for
    /// whoever steers by what waits unaccepted (`reuseport --steer load`).
    pub accept_tally: Option<AcceptTally>,
}

/// Runs one worker until it has drained, on the backend `config` names,
/// answering with `handler`; `counters` is its slot in the stats block.
///
/// Call it on the thread that will run the loop: an io_uring ring is
/// created here and is single-issuer.
pub fn run(
    config: &EngineConfig,
    sources: Sources,
    counters: &WorkerCounters,
    handler: &mut dyn Handler,
) -> io::Result<()> {
    // The handler's code may talk to the master while this worker runs.
    let _attached = match &sources.channel {
        Some(channel) => Some(crate::messages::attach(channel.as_fd())?),
        None => None,
    };
    let core = Core::new(config, sources, counters, handler);
    match config.backend {
        Backend::Uring => uring::UringWorker::new(core)?.serve(),
        Backend::Epoll => epoll::EpollWorker::new(core)?.serve(),
    }
}

/// What both drivers keep besides their connections and their kernel interface.
struct Core<'a> {
    config: &'a EngineConfig,
    sources: Sources,
    handler: &'a mut dyn Handler,
    /// The handler has a fixed body: answer from the preformatted pages.
    fixed: bool,
    scratch: ResponseScratch,
    bodies: BodyPool,
    /// Per-slot output buffers for the handler's framed responses: slot `i`
    /// owns `out[i * out_cap..(i + 1) * out_cap]` (empty with a fixed body).
    out: Box<[u8]>,
    out_cap: usize,
    responses: Responses,
    limits: Limits,
    timeouts: Timeouts,
    /// Per-slot room for an incomplete header block: slot `i` owns
    /// `carry[i * carry_cap..(i + 1) * carry_cap]`.
    carry: Box<[u8]>,
    carry_cap: usize,
    counters: &'a WorkerCounters,
    counts: CountersSnapshot,
    inbox: Box<Message>,
    /// Acks of the batches taken this loop turn, sent together at its end.
    acks: Acks,
    /// Handed-over connections closing late (see [`LateCloses`]).
    late_closes: LateCloses,
    /// The master's channel is still open: a draining worker waits for its end
    /// of stream, so connections the master sent before `Drain` are all served.
    channel_open: bool,
    draining: bool,
    drain_deadline: u64,
    now: u64,
    /// When the injected stall begins, until it has happened.
    stall_at: Option<u64>,
}

/// How long a worker keeps its fd of a handed-over connection after it is
/// done with it (its FIN sent), in milliseconds of the coarse clock, which
/// moves a jiffy at a time: until its next step or two (up to 4 ms at
/// HZ=250), mostly longer than the master takes under load to read the ack
/// and close its copy (a 200 µs batch wait or two). 5 ms took no more
/// teardowns off the master in `perf`.
const LATE_CLOSE_MS: u64 = 2;
/// Handed-over connections kept open at once for their late close; past
/// that, one closes at once.
const LATE_CLOSES: usize = 1024;

/// Handed-over connections the worker is done with, kept open a moment
/// (their FIN sent) so that the master's close of its copy, which comes once
/// it has read the ack, is usually not the last: the socket's teardown then
/// runs in the worker, one of N, not in the one master every connection
/// passes through. Fixed capacity: nothing allocates after start.
struct LateCloses {
    fds: VecDeque<(u64, OwnedFd)>,
}

impl LateCloses {
    fn new() -> LateCloses {
        LateCloses { fds: VecDeque::with_capacity(LATE_CLOSES) }
    }

    /// Keeps `fd` until [`LATE_CLOSE_MS`] after `now`; gives it back (to
    /// close now) when full.
    fn keep(&mut self, now: u64, fd: OwnedFd) -> Option<OwnedFd> {
        if self.fds.len() == self.fds.capacity() {
            return Some(fd);
        }
        self.fds.push_back((now + LATE_CLOSE_MS, fd));
        None
    }

    /// The next fd whose time has come at `now`.
    fn next_due(&mut self, now: u64) -> Option<OwnedFd> {
        if self.fds.front().is_some_and(|&(due, _)| due <= now) {
            return self.fds.pop_front().map(|(_, fd)| fd);
        }
        None
    }
}

/// Where a connection came from, which says how the worker closes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Origin {
    /// Accepted here: the worker's close is the socket's last.
    #[default]
    Accepted,
    /// Handed over by the master, which keeps its copy until it has read the
    /// ack. Closing ours alone then sends nothing: the client would get our
    /// FIN only when the master closes its copy (a batch later), and the TCP
    /// close would run in the master. The worker sends its FIN itself
    /// (`shutdown(SHUT_WR)`) before it closes, and closes a moment later
    /// ([`LateCloses`]).
    Handed,
}

/// A batch of connections from the master, owned now.
struct Batch {
    fds: [Option<OwnedFd>; MAX_FDS],
    received: Received,
}

impl<'a> Core<'a> {
    fn new(
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
            counts,
            inbox: Message::new(),
            acks: Acks::new(),
            late_closes: LateCloses::new(),
            draining: false,
            drain_deadline: 0,
            now: now_ms(),
            stall_at: None,
        }
    }

    /// Slot `slot`'s carry buffer and the context its connection's handlers take.
    fn parts(&mut self, slot: u32) -> (&mut [u8], Context<'_>) {
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

    fn ready(&mut self) {
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
    fn work_for(&self, requests: u32) {
        let Some(per_request) = self.config.faults.per_request else { return };
        if requests == 0 {
            return;
        }
        let until = std::time::Instant::now() + per_request * requests;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    /// Publishes the counters once per loop turn (the heartbeat moves).
    fn publish(&mut self, live: usize) {
        self.counts.live = live as u64;
        self.counts.heartbeat += 1;
        self.counters.store(&self.counts);
    }

    /// The loop woke from its wait: the clock moves, and the accept tally
    /// notes that the loop turns (else a worker woken by a connection after
    /// a long wait would seem stalled until the end of its turn).
    fn woke(&mut self) {
        self.now = now_ms();
        if let Some(tally) = &self.sources.accept_tally {
            tally.turned_now();
        }
    }

    /// True when the loop should end: drained, or out of time to.
    fn finished(&self, live: usize) -> bool {
        self.draining && ((live == 0 && !self.channel_open) || self.now >= self.drain_deadline)
    }

    fn stopped(&mut self) {
        self.counts.live = 0;
        self.counters.store(&self.counts);
        self.counters.set_state(STATE_STOPPED);
    }

    /// Begins the drain; false when it had begun already.
    fn start_drain(&mut self) -> bool {
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
    fn open_connection(&mut self, conn: &mut Connection, slot: u32, origin: Origin) {
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
    fn take_batch(&mut self, len: usize) -> Batch {
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
        if received.truncated || received.fds < received.sent {
            // At the open-file limit: the kernel dropped the rest of the batch.
            // The master still holds those connections and hands them on.
            self.counts.fd_limit_hits += 1;
        }
        Batch { fds, received }
    }

    /// Settles a batch once it is adopted: every `Connections` message gets
    /// exactly one ack, whatever arrived. The ack waits for the end of the
    /// loop turn ([`Core::flush_acks`]), so batches taken in one turn are
    /// answered with one message. A `Text` message asks for no ack: its line
    /// goes to the handler. `live`: the connections open now, the batch's
    /// included. False when the master is gone.
    fn acknowledge(&mut self, received: &Received, adopted: usize, live: usize) -> bool {
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

    /// Sends the acks gathered this turn, if any (once per loop turn, before
    /// the loop waits), `live` (the connections open now) published first:
    /// the master stops counting the acknowledged connections as handed
    /// over when it reads the ack, and must find them counted as live by
    /// then, else for a moment they are counted nowhere and the next
    /// connections go to this worker as if it had room for them. False when
    /// the master is gone.
    fn flush_acks(&mut self, live: usize) -> bool {
        if self.acks.is_empty() {
            return true;
        }
        self.counts.live = live as u64;
        self.counters.live.store(self.counts.live, std::sync::atomic::Ordering::Relaxed);
        let sent = match self.sources.channel.as_ref() {
            Some(channel) => send_acks(channel.as_fd(), &self.acks).is_ok(),
            None => true,
        };
        self.acks.clear();
        sent
    }
}

/// Adopts a batch's connections in order with `adopt` (false: full), so the
/// adopted ones are a prefix of the batch: once one is declined the rest are
/// too. Declining closes only our copy; the master's keeps the connection
/// open and the master hands it elsewhere. Returns (adopted, declined).
fn adopt_batch(batch: &mut Batch, mut adopt: impl FnMut(OwnedFd) -> io::Result<bool>) -> io::Result<(usize, usize)> {
    let mut adopted = 0;
    let mut declined = 0;
    for fd in batch.fds.iter_mut().filter_map(Option::take) {
        if declined > 0 || !adopt(fd)? {
            declined += 1;
            continue;
        }
        adopted += 1;
    }
    Ok((adopted, declined))
}

/// The next connection queued on a listener of the worker's own, taken
/// without waiting, as a retiring `reuseport` worker empties its queue before
/// it closes the listener; `None` when the queue is empty (or the worker is
/// out of fds). What arrives after the last accept moves to the group's
/// other listeners if the kernel migrates requests
/// (`net.ipv4.tcp_migrate_req`), else it is reset.
fn next_queued(listener: &OwnedFd) -> Option<OwnedFd> {
    if crate::sys::socket::set_nonblocking(listener.as_fd()).is_err() {
        return None;
    }
    loop {
        match crate::sys::socket::accept(listener.as_fd()) {
            Ok(queued) => return queued,
            Err(e) if e.raw_os_error().is_some_and(crate::sys::out_of_resources) => return None,
            // The connection died in the queue: try the next one.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::channel::channel_pair;
    use crate::handler::FixedBody;
    use crate::stats::StatsBlock;

    #[test]
    fn an_ack_goes_out_with_its_connections_counted_live() {
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
        assert!(core.flush_acks(3), "the master's end is open");
        let mut ack = [0u8; 64];
        let len = UnixStream::from(master).read(&mut ack).expect("the ack");
        assert_eq!(
            Acks::decode(&ack[..len]).map(|a| a.as_slice().to_vec()),
            Some(vec![Ack { received: 2, adopted: 2 }])
        );
        assert_eq!(counters.live.load(Ordering::Relaxed), 3, "the live count published with the ack");
    }
}
