//! A timed, mixed load for the scenario benches: `churn` slots make one
//! request per connection (`Connection: close`), `pipelined` slots keep a
//! connection and write `depth` requests at a time; every answer's latency
//! (from the write of its batch) goes into a histogram, and a request that
//! has waited `timeout` counts as a timeout: its connection is dropped and a
//! new one takes its place, as wrk's clients go on. A hook runs every loop
//! turn with the time elapsed, to stop and continue a worker mid-run.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::client::{count_answers, Shape, CLOSE_REQUEST, KEEP_ALIVE_REQUEST};

/// epoll events taken per wait.
const MAX_EVENTS: usize = 256;
/// Receive buffer per connection.
const BUF_LEN: usize = 16 * 1024;

/// The clients of one run.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Connections that each carry one request (`Connection: close`).
    pub churn: usize,
    /// Kept-alive connections with `depth` requests in flight.
    pub pipelined: usize,
    /// Requests per write on a pipelined connection.
    pub depth: usize,
}

/// Latencies in buckets of 1/8 of a power of two (about 9 % wide), from 1 µs.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; 8 * 40] }
    }

    fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().max(1) as f64;
        let bucket = ((us.log2() * 8.0) as usize).min(self.counts.len() - 1);
        self.counts[bucket] += 1;
    }

    /// The latency below which `quantile` (0..1) of the answers came.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (quantile * total as f64).ceil() as u64;
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= target {
                return Some(Duration::from_secs_f64(2f64.powf((bucket + 1) as f64 / 8.0) / 1e6));
            }
        }
        None
    }
}

/// What one run saw.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Answers received.
    pub answered: u64,
    /// Requests that waited `timeout` without an answer (their connection was dropped).
    pub timeouts: u64,
    /// Connections that failed otherwise (reset, refused, a bad answer).
    pub errors: u64,
    /// How long the run lasted.
    pub elapsed: Duration,
    /// The latency of every answer on a churn connection.
    pub churn: Histogram,
    /// The latency of every answer on a pipelined connection.
    pub pipelined: Histogram,
}

impl Outcome {
    /// Answers per second.
    pub fn rps(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }

    /// Every answer's latency, churn and pipelined together.
    pub fn all(&self) -> Histogram {
        let counts = self.churn.counts.iter().zip(&self.pipelined.counts).map(|(a, b)| a + b).collect();
        Histogram { counts }
    }
}

/// One slot: a connection and where its requests stand.
struct Slot {
    pipelined: bool,
    fd: Option<OwnedFd>,
    buf: Box<[u8]>,
    filled: usize,
    /// Answers still due for the batch written at `sent`.
    due: usize,
    sent: Instant,
    to_write: usize,
    written: usize,
}

/// Runs `mix` against `addr` for `duration`; `hook` is called every loop turn
/// with the time elapsed.
pub fn run(
    addr: SocketAddrV4,
    mix: Mix,
    duration: Duration,
    timeout: Duration,
    mut hook: impl FnMut(Duration),
) -> io::Result<Outcome> {
    // SAFETY: epoll_create1 takes no pointers.
    let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nothing else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let depth = mix.depth.max(1);
    let pipelined_requests = KEEP_ALIVE_REQUEST.repeat(depth);
    let start = Instant::now();
    let mut slots: Vec<Slot> = (0..mix.churn + mix.pipelined)
        .map(|i| Slot {
            pipelined: i >= mix.churn,
            fd: None,
            buf: vec![0; BUF_LEN].into_boxed_slice(),
            filled: 0,
            due: 0,
            sent: start,
            to_write: 0,
            written: 0,
        })
        .collect();
    let mut out = Outcome {
        answered: 0,
        timeouts: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        churn: Histogram::new(),
        pipelined: Histogram::new(),
    };
    let mut shape = Shape::default();
    for (i, slot) in slots.iter_mut().enumerate() {
        open(&epoll, slot, i, addr, depth)?;
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    while start.elapsed() < duration {
        hook(start.elapsed());
        // SAFETY: `events` has room for MAX_EVENTS entries.
        let ready = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), MAX_EVENTS as i32, 10) };
        let now = Instant::now();
        for event in events.iter().take(ready.max(0) as usize) {
            let i = event.u64 as usize;
            let slot = &mut slots[i];
            let request = if slot.pipelined { &pipelined_requests[..] } else { CLOSE_REQUEST };
            match serve(slot, request, &mut shape, now, &mut out) {
                Ok(true) => {}
                Ok(false) => open(&epoll, &mut slots[i], i, addr, depth)?,
                Err(_) => {
                    out.errors += 1;
                    open(&epoll, &mut slots[i], i, addr, depth)?;
                }
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.due > 0 && now.duration_since(slot.sent) >= timeout {
                out.timeouts += 1;
                open(&epoll, slot, i, addr, depth)?;
            }
        }
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// Writes and reads what `slot` can; false when its connection is done
/// (closed by the server after a churn answer): open the next one.
fn serve(slot: &mut Slot, request: &[u8], shape: &mut Shape, now: Instant, out: &mut Outcome) -> io::Result<bool> {
    let Some(fd) = slot.fd.as_ref().map(|f| f.as_raw_fd()) else { return Ok(false) };
    while slot.written < slot.to_write {
        let rest = &request[slot.written..slot.to_write];
        // SAFETY: `rest` is a live buffer; MSG_NOSIGNAL turns a reset into EPIPE.
        let sent = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) {
                break;
            }
            return Err(e);
        }
        slot.written += sent as usize;
    }
    loop {
        let space = &mut slot.buf[slot.filled..];
        // SAFETY: `space` is a live, writable buffer.
        let got = unsafe { libc::recv(fd, space.as_mut_ptr().cast(), space.len(), libc::MSG_DONTWAIT) };
        if got == 0 {
            // Closed: after a churn answer that is the end; otherwise a failure.
            return if slot.due == 0 { Ok(false) } else { Err(io::Error::from(io::ErrorKind::UnexpectedEof)) };
        }
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(true),
                Some(libc::ECONNRESET) if slot.due == 0 => Ok(false),
                _ => Err(e),
            };
        }
        slot.filled += got as usize;
        let answered = count_answers(shape, &mut slot.buf, &mut slot.filled)?;
        if answered > slot.due {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "more answers than requests"));
        }
        let histogram = if slot.pipelined { &mut out.pipelined } else { &mut out.churn };
        for _ in 0..answered {
            histogram.record(now.duration_since(slot.sent));
        }
        out.answered += answered as u64;
        slot.due -= answered;
        if slot.due == 0 && slot.pipelined {
            // The next batch, on the same connection.
            slot.due = request.len() / KEEP_ALIVE_REQUEST.len();
            slot.sent = now;
            slot.to_write = request.len();
            slot.written = 0;
            return serve(slot, request, shape, now, out);
        }
    }
}

/// (Re)opens `slot`'s connection (non-blocking connect) and queues its first write.
fn open(epoll: &OwnedFd, slot: &mut Slot, index: usize, addr: SocketAddrV4, depth: usize) -> io::Result<()> {
    slot.fd = None;
    // SAFETY: socket(2) takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::connect(raw, (&sockaddr as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sockaddr) as u32)
    };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(io::Error::last_os_error());
    }
    let per_write = if slot.pipelined { depth } else { 1 };
    let request_len = if slot.pipelined { KEEP_ALIVE_REQUEST.len() } else { CLOSE_REQUEST.len() };
    slot.filled = 0;
    slot.due = per_write;
    slot.sent = Instant::now();
    slot.to_write = per_write * request_len;
    slot.written = 0;
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: index as u64,
    };
    // SAFETY: a valid epoll_event for the call.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, raw, &mut event) } != 0 {
        return Err(io::Error::last_os_error());
    }
    slot.fd = Some(fd);
    Ok(())
}
