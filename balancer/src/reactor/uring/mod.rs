//! The master's I/O on io_uring: every op is one submission on one ring,
//! and [`Reactor::wait`] is the loop turn's single `io_uring_enter`, so the
//! sends and receives of a whole batch of completions go to the kernel
//! together. Fire-and-forget ops (cancel, close) post nothing unless they fail,
//! and those failures are not reported.
//!
//! The master wakes once per batch of events, not once per event. The ring
//! defers its task work to the master's own waits (`DEFER_TASKRUN`), so an
//! event that arrives while the master sleeps only wakes it once enough have
//! gathered; each wait asks for `WAIT_BATCH` completions but returns
//! [`BATCH_WAIT`](super::BATCH_WAIT) after it began (longer after busy
//! turns: `batch_wait.rs`) if any has come (the kernel's minimum-wait
//! timeout, Linux 6.12), and at once for the first event after a quiet spell.
//! Busy, the master sleeps that long at most and wakes to a batch; idle,
//! it answers the next event with no delay. The listener is watched with a
//! plain multishot poll, which honours that batching (a multishot accept's
//! exclusive wait would wake the master for every connection), and what is
//! waiting is then taken by a drain: a multishot accept that stops at the
//! empty queue instead of waiting (Linux 6.10; before, `accept4` in a burst),
//! submitted at once, so a batch of connections costs one `io_uring_enter`.
//! Workers' acks come through a multishot receive into a provided-buffer
//! ring, copied into the completion.
//!
//! This file: the ring, the ops, the wait and the completions reaped;
//! `accepts.rs`: the listeners' polls, drains and bursts.

mod accepts;

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, EnterFlags, IoUring};
use ringmaster_engine::bufring::BufRing;
use ringmaster_engine::uring;

use self::accepts::{Drain, Watch, DRAIN_KIND};
use super::batch_wait::BatchWait;
use super::sys;
use super::{Completion, Datagram, Lent, LentIo, Reactor, Token, DATAGRAM_MAX};

/// Submission queue entries: a turn's ops; more are submitted early.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: a burst of accepts and acks fits.
pub const CQ_ENTRIES: u32 = 8192;
/// Completions a wait asks for before it returns early.
const WAIT_BATCH: u32 = 64;
/// The longest one wait lasts with nothing happening (the tick comes sooner).
const WAIT_LIMIT: Duration = Duration::from_secs(1);
/// The buffer group the multishot receives read into, and its buffers.
const RECV_GROUP: u16 = 1;
const RECV_BUFFERS: u16 = 256;

/// `struct io_uring_getevents_arg`: the extended argument of a wait.
#[repr(C)]
struct WaitArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// The master's ring.
pub struct UringReactor {
    // Dropped first: the kernel stops using the buffers below.
    ring: IoUring,
    recv_buffers: BufRing,
    /// The timeout's duration; the kernel reads it when the op is submitted.
    tick: Box<Timespec>,
    wait_limit: Box<KernelTimespec>,
    /// The kernel has the minimum-wait timeout: waits gather a batch.
    batched_waits: bool,
    /// How long they let it gather.
    batch_wait: BatchWait,
    /// Listeners watched for accepts (by a multishot poll under the same token).
    accepts: Vec<Watch>,
    /// Listeners whose last burst stopped at the cap: accept again next turn.
    again: Vec<Watch>,
    /// Polls of accepts that ended on an error, being cancelled: their last
    /// completion is not reported (the accept's end was).
    ended_polls: Vec<Token>,
    /// The kernel's accept can stop at an empty queue: ready listeners are drained
    /// by the ring (else by `accept4` bursts).
    drains_accept: bool,
    /// Drains in flight, at most one per listener.
    drains: Vec<Drain>,
    /// A drain was queued since the last submission: submit before sleeping.
    drain_queued: bool,
}

impl std::fmt::Debug for UringReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringReactor").field("batched_waits", &self.batched_waits).finish_non_exhaustive()
    }
}

impl UringReactor {
    /// A ring for the master.
    pub fn new() -> io::Result<UringReactor> {
        let deferred =
            IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES);
        let ring = match deferred {
            // Before 6.1: task work runs as it comes (a wake-up per event).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES)?
            }
            ring => ring?,
        };
        let recv_buffers = BufRing::register_group(&ring.submitter(), RECV_BUFFERS, DATAGRAM_MAX as u32, RECV_GROUP)?;
        let batched_waits = ring.params().is_feature_min_timeout() && ring.params().is_feature_ext_arg();
        // IORING_ACCEPT_DONTWAIT came with bundles, in 6.10.
        let drains_accept = ring.params().is_feature_recvsend_bundle();
        let limit = KernelTimespec { tv_sec: WAIT_LIMIT.as_secs() as i64, tv_nsec: 0 };
        Ok(UringReactor {
            ring,
            recv_buffers,
            tick: Box::new(Timespec::new()),
            wait_limit: Box::new(limit),
            batched_waits,
            batch_wait: BatchWait::default(),
            accepts: Vec::with_capacity(2),
            again: Vec::with_capacity(2),
            ended_polls: Vec::new(),
            drains_accept,
            drains: Vec::with_capacity(2),
            drain_queued: false,
        })
    }

    /// Queues `entry` tagged with `token`.
    ///
    /// # Safety
    /// As for [`uring::push`]: what the entry points to outlives the op.
    unsafe fn push(&mut self, entry: squeue::Entry, token: Token) -> io::Result<()> {
        // SAFETY: guaranteed by the caller.
        unsafe { uring::push(&mut self.ring, &entry.user_data(token)) }
    }

    fn push_ignored(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: cancel and close entries point at no memory.
        unsafe { uring::push_ignored(&mut self.ring, entry) }
    }

    /// Submits what is queued and waits: for nothing when completions are
    /// ready already, else for a batch (or the first event after a quiet spell).
    fn enter(&mut self, ready: bool) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        let getevents = EnterFlags::GETEVENTS.bits();
        let entered = if ready {
            // SAFETY: no argument is passed.
            unsafe { self.ring.submitter().enter::<libc::sigset_t>(to_submit, 0, getevents, None) }
        } else if self.batched_waits {
            let arg = WaitArg {
                sigmask: 0,
                sigmask_sz: 0,
                min_wait_usec: self.batch_wait.now().as_micros() as u32,
                ts: &*self.wait_limit as *const KernelTimespec as u64,
            };
            let flags = getevents | EnterFlags::EXT_ARG.bits();
            // SAFETY: `arg` is a valid io_uring_getevents_arg for the call and its
            // `ts` points at a timespec boxed in `self`, alive for the call.
            unsafe { self.ring.submitter().enter(to_submit, WAIT_BATCH, flags, Some(&arg)) }
        } else {
            // SAFETY: no argument is passed.
            unsafe { self.ring.submitter().enter::<libc::sigset_t>(to_submit, 1, getevents, None) }
        };
        match entered {
            Ok(_) => Ok(()),
            // A signal, the wait limit, or completions to reap first: go round again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::ETIME)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// One completion from the ring into `out`: accepts for a ready listener,
    /// a receive's message copied out of its buffer.
    fn take(&mut self, token: Token, result: i32, flags: u32, out: &mut Vec<Completion>) {
        let more = cqueue::more(flags);
        if kind_of(token) == DRAIN_KIND {
            self.take_drain(token, result, more, out);
            return;
        }
        if let Some(at) = self.ended_polls.iter().position(|&t| t == token) {
            if !more {
                self.ended_polls.swap_remove(at);
            }
            return;
        }
        if let Some(at) = self.accepts.iter().position(|w| w.token == token) {
            let watch = self.accepts[at];
            if !more {
                // The poll ended (cancelled, or the kernel gave up on it): so does the accept.
                self.accepts.swap_remove(at);
                self.again.retain(|w| *w != watch);
                let end = if result > 0 { -libc::ECANCELED } else { result };
                match self.drains.iter_mut().find(|d| d.watch == watch) {
                    // Its connections come first: the end waits for the drain's.
                    Some(drain) => drain.end = Some(end),
                    None => out.push(Completion::of(token, end, false)),
                }
                return;
            }
            self.accept_burst(watch, out);
            return;
        }
        let mut completion = Completion::of(token, result, more);
        if let Some(bid) = cqueue::buffer_select(flags) {
            if result > 0 {
                // SAFETY: `bid` was just handed to us by this completion and is
                // recycled right after the copy.
                let bytes = unsafe { self.recv_buffers.filled(bid, result as usize) };
                completion.message = Datagram::copy(bytes);
            }
            self.recv_buffers.recycle(bid);
        }
        out.push(completion);
    }
}

/// The kind a token was packed with.
fn kind_of(token: Token) -> u8 {
    ringmaster_engine::token::unpack(token).0
}

impl Reactor for UringReactor {
    fn poll_readable(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let poll = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32).multi(true).build();
        // SAFETY: a poll points at no memory.
        unsafe { self.push(poll, token) }
    }

    fn accept(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        // A burst ends at EAGAIN: the listener must not block. Shared with
        // workers (`shared` mode), it is non-blocking for them too, which
        // their accepts (on a ring or on epoll) expect.
        sys::set_nonblocking(listener)?;
        let watch = Watch { token, listener };
        let poll = opcode::PollAdd::new(Fd(listener), libc::POLLIN as u32).multi(true).build();
        // SAFETY: a poll points at no memory.
        unsafe { self.push(poll, token) }?;
        self.accepts.push(watch);
        // Connections already waiting get no poll event: take them now (a
        // drain goes after the poll, so what comes later wakes the poll).
        if self.drains_accept {
            self.drain(watch);
        } else {
            self.again.push(watch);
        }
        Ok(())
    }

    fn start(&mut self, lent: Lent, token: Token) -> io::Result<()> {
        let fd = Fd(lent.fd);
        let entry = match lent.io {
            LentIo::Send { buf, len } => opcode::Send::new(fd, buf, clamp(len)).flags(libc::MSG_NOSIGNAL).build(),
            LentIo::Recv { buf, len } => opcode::Recv::new(fd, buf, clamp(len)).build(),
            LentIo::SendMsg { header } => opcode::SendMsg::new(fd, header).flags(libc::MSG_NOSIGNAL as u32).build(),
        };
        // SAFETY: the memory's owner promised, making the `Lent`, to keep it
        // until the completion.
        unsafe { self.push(entry, token) }
    }

    fn recv_multi(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let recv = opcode::RecvMulti::new(Fd(fd), RECV_GROUP).build();
        // SAFETY: the receive reads into the registered buffers, which live as
        // long as the ring.
        unsafe { self.push(recv, token) }
    }

    fn timeout(&mut self, after: Duration, token: Token) -> io::Result<()> {
        *self.tick = Timespec::from(after);
        let timeout = opcode::Timeout::new(&*self.tick).build();
        // SAFETY: the timespec is boxed in `self` and only rewritten by the
        // next timeout, which comes after this one completed.
        unsafe { self.push(timeout, token) }
    }

    fn cancel(&mut self, token: Token) -> io::Result<()> {
        // An accept's poll ends with ECANCELED, which ends the accept.
        self.push_ignored(opcode::AsyncCancel::new(token).build())
    }

    fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        // The ring closes it: from here the number is the kernel's to reuse.
        self.push_ignored(opcode::Close::new(Fd(fd.into_raw_fd())).build())
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        let gathered = self.gather(out);
        self.batch_wait.after_turn(out.iter().filter(|c| c.accepted.is_some()).count());
        gathered
    }
}

impl UringReactor {
    /// [`Reactor::wait`]'s submission, wait and reaping.
    fn gather(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        out.clear();
        for watch in std::mem::take(&mut self.again) {
            if self.accepts.contains(&watch) {
                self.accept_burst(watch, out);
            }
        }
        let ready = self.drain_queued || !out.is_empty() || !self.ring.completion().is_empty();
        self.drain_queued = false;
        self.enter(ready)?;
        let room = out.capacity().max(1);
        let mut cqes = [(0u64, 0i32, 0u32); 64];
        loop {
            let mut n = 0;
            for cqe in self.ring.completion().take(cqes.len().min(room.saturating_sub(out.len()))) {
                cqes[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                n += 1;
            }
            for &(token, result, flags) in &cqes[..n] {
                if token != uring::IGNORED {
                    self.take(token, result, flags, out);
                }
            }
            if out.len() >= room {
                return Ok(());
            }
            if n < cqes.len() {
                if !std::mem::take(&mut self.drain_queued) {
                    return Ok(());
                }
                // A drain completes as it is submitted: its connections go out in this turn.
                match self.ring.submit() {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                        self.drain_queued = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Buffers here are far below 4 GiB; a length is clamped rather than wrapped.
fn clamp(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}
