//! A small epoll load client for the end-to-end benches.
//!
//! Everything is made when the client is: the connections (keep-alive), one
//! receive buffer per connection, the epoll event array, and the request bytes
//! preformatted `depth` times back to back. [`LoadClient::run`] then drives
//! `n` requests with no allocation per request (errors aside): a write is a
//! slice of the preformatted requests, and responses are counted in place by
//! their length (learned from the first one: every answer of one kind has the
//! same size, the `Date` being fixed-width), falling back to scanning for
//! `\r\n\r\n` and `Content-Length` when the fast check does not match.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A wrk-like request, kept alive (the HTTP/1.1 default).
pub const KEEP_ALIVE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// The same request asking the server to close after answering.
pub const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// Receive buffer per connection: 16 pipelined answers are about 2.2 KiB.
const BUF_LEN: usize = 16 * 1024;
/// A response head longer than this is not one of ours.
const MAX_HEAD: usize = 4096;
/// epoll events taken per wait.
const MAX_EVENTS: usize = 256;
/// A run fails when no response completes for this long.
const STALL: Duration = Duration::from_secs(10);
/// How long a setup connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client does.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// `connections` kept-alive connections, each with one write of `depth`
    /// requests in flight at a time (`depth` 1 is plain keep-alive).
    KeepAlive {
        /// Connections opened up front and kept for every run.
        connections: usize,
        /// Requests per write (pipelining depth).
        depth: usize,
    },
    /// A new connection per request (`Connection: close`, the server closes),
    /// `concurrency` of them open at a time.
    Churn {
        /// Connections in progress at once.
        concurrency: usize,
    },
}

/// One slot: a connection and its buffer.
struct Conn {
    fd: Option<OwnedFd>,
    buf: Box<[u8]>,
    /// Bytes of `buf` received and not yet counted as a response.
    filled: usize,
    /// Responses still due on this connection.
    inflight: usize,
    /// Bytes of the preformatted requests to write in the current batch.
    to_write: usize,
    /// How many of them are written.
    written: usize,
    /// `EPOLLOUT` is in the interest set (a write was cut short).
    want_out: bool,
}

/// The size of the answers seen so far (0 until the first one).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    head: usize,
    total: usize,
}

/// The load client; see the module docs.
pub struct LoadClient {
    epoll: OwnedFd,
    addr: SocketAddrV4,
    sockaddr: libc::sockaddr_in,
    scenario: Scenario,
    /// The request, `depth` times back to back.
    requests: Box<[u8]>,
    request_len: usize,
    conns: Vec<Conn>,
    events: Box<[libc::epoll_event]>,
    shape: Shape,
    issued: u64,
    done: u64,
    last_progress: Instant,
}

impl LoadClient {
    /// Makes the client; for keep-alive, connects all its connections now.
    pub fn new(addr: SocketAddrV4, scenario: Scenario) -> io::Result<LoadClient> {
        // SAFETY: epoll_create1 takes no pointers.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(os_error("epoll_create1"));
        }
        // SAFETY: epoll_create1 returned a new fd that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        let (request, depth, slots) = match scenario {
            Scenario::KeepAlive { connections, depth } => (KEEP_ALIVE_REQUEST, depth.max(1), connections),
            Scenario::Churn { concurrency } => (CLOSE_REQUEST, 1, concurrency),
        };
        let sockaddr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let mut client = LoadClient {
            epoll,
            addr,
            sockaddr,
            scenario,
            requests: request.repeat(depth).into_boxed_slice(),
            request_len: request.len(),
            conns: (0..slots)
                .map(|_| Conn {
                    fd: None,
                    buf: vec![0; BUF_LEN].into_boxed_slice(),
                    filled: 0,
                    inflight: 0,
                    to_write: 0,
                    written: 0,
                    want_out: false,
                })
                .collect(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS].into_boxed_slice(),
            shape: Shape::default(),
            issued: 0,
            done: 0,
            last_progress: Instant::now(),
        };
        if let Scenario::KeepAlive { .. } = scenario {
            for slot in 0..client.conns.len() {
                client.connect_kept(slot)?;
            }
        }
        Ok(client)
    }

    /// Sends `requests` requests and waits for every answer.
    pub fn run(&mut self, requests: u64) -> io::Result<()> {
        self.issued = 0;
        self.done = 0;
        self.last_progress = Instant::now();
        match self.scenario {
            Scenario::KeepAlive { depth, .. } => {
                for slot in 0..self.conns.len() {
                    self.start_batch(slot, requests, depth)?;
                }
                while self.done < requests {
                    let ready = self.wait()?;
                    for i in 0..ready {
                        let event = self.events[i];
                        let (slot, flags) = (event.u64 as usize, event.events);
                        if flags & libc::EPOLLOUT as u32 != 0 {
                            self.flush(slot)?;
                        }
                        if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                            if self.receive(slot)? {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    format!(
                                        "the server closed a keep-alive connection ({} of {requests} done)",
                                        self.done
                                    ),
                                ));
                            }
                            if self.conns[slot].inflight == 0 {
                                self.start_batch(slot, requests, depth)?;
                            }
                        }
                    }
                }
            }
            Scenario::Churn { .. } => {
                for slot in 0..self.conns.len() {
                    if self.issued < requests {
                        self.open(slot)?;
                    }
                }
                while self.done < requests {
                    let ready = self.wait()?;
                    for i in 0..ready {
                        let slot = self.events[i].u64 as usize;
                        if self.conns[slot].fd.is_none() {
                            continue;
                        }
                        self.flush(slot)?;
                        if !self.receive(slot)? {
                            continue;
                        }
                        // The server closed: the answer must be in.
                        if self.conns[slot].inflight != 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("the server closed before answering ({} of {requests} done)", self.done),
                            ));
                        }
                        // Dropping the fd closes it and takes it out of the epoll set.
                        self.conns[slot].fd = None;
                        if self.issued < requests {
                            self.open(slot)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits for events; fails after [`STALL`] without a completed response.
    fn wait(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: `events` is a live array of MAX_EVENTS entries for the kernel to fill.
            let ready = unsafe {
                libc::epoll_wait(self.epoll.as_raw_fd(), self.events.as_mut_ptr(), MAX_EVENTS as libc::c_int, 1000)
            };
            if ready > 0 {
                return Ok(ready as usize);
            }
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(io::Error::new(e.kind(), format!("epoll_wait: {e}")));
                }
            }
            if self.last_progress.elapsed() > STALL {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no response from {} for {STALL:?} ({} issued, {} answered)",
                        self.addr, self.issued, self.done
                    ),
                ));
            }
        }
    }

    /// Opens one kept-alive connection (setup, blocking connect) into `slot`.
    fn connect_kept(&mut self, slot: usize) -> io::Result<()> {
        let stream = TcpStream::connect_timeout(&self.addr.into(), CONNECT_TIMEOUT)
            .map_err(|e| io::Error::new(e.kind(), format!("connect to {}: {e}", self.addr)))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let fd = OwnedFd::from(stream);
        self.register(fd.as_raw_fd(), libc::EPOLL_CTL_ADD, libc::EPOLLIN as u32, slot)?;
        self.conns[slot].fd = Some(fd);
        Ok(())
    }

    /// Queues the next write of up to `depth` requests on `slot`, if any are left.
    fn start_batch(&mut self, slot: usize, requests: u64, depth: usize) -> io::Result<()> {
        let count = (requests - self.issued).min(depth as u64) as usize;
        if count == 0 {
            return Ok(());
        }
        self.issued += count as u64;
        let conn = &mut self.conns[slot];
        conn.inflight = count;
        conn.to_write = count * self.request_len;
        conn.written = 0;
        self.flush(slot)
    }

    /// Starts a new connection (churn) in `slot`, writes its request if the
    /// handshake is already done (it usually is on loopback), and registers it
    /// edge-triggered.
    fn open(&mut self, slot: usize) -> io::Result<()> {
        // SAFETY: socket(2) takes no pointers.
        let raw =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_error("socket"));
        }
        // SAFETY: socket returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `sockaddr` is a valid sockaddr_in and the length is its size.
        let rc = unsafe {
            libc::connect(
                raw,
                (&self.sockaddr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(io::Error::new(e.kind(), format!("connect to {}: {e}", self.addr)));
            }
        }
        self.issued += 1;
        let conn = &mut self.conns[slot];
        conn.fd = Some(fd);
        conn.filled = 0;
        conn.inflight = 1;
        conn.to_write = self.request_len;
        conn.written = 0;
        conn.want_out = false;
        let sent = write_some(raw, &self.requests, conn)?;
        let mut interest = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if !sent {
            interest |= libc::EPOLLOUT as u32;
        }
        self.register(raw, libc::EPOLL_CTL_ADD, interest, slot)
    }

    /// Writes what is left of the current batch; in keep-alive, asks for
    /// `EPOLLOUT` while a write is cut short.
    fn flush(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        let Some(fd) = conn.fd.as_ref().map(|fd| fd.as_raw_fd()) else { return Ok(()) };
        let sent = write_some(fd, &self.requests, conn)?;
        // Churn sockets are edge-triggered with EPOLLOUT set from the start when needed.
        let want_out = !sent;
        if matches!(self.scenario, Scenario::Churn { .. }) || want_out == conn.want_out {
            return Ok(());
        }
        conn.want_out = want_out;
        let interest = if sent { libc::EPOLLIN as u32 } else { (libc::EPOLLIN | libc::EPOLLOUT) as u32 };
        self.register(fd, libc::EPOLL_CTL_MOD, interest, slot)
    }

    /// Reads what is there on `slot` and counts the complete responses;
    /// returns true when the peer has closed (end of stream or reset).
    fn receive(&mut self, slot: usize) -> io::Result<bool> {
        let edge = matches!(self.scenario, Scenario::Churn { .. });
        let conn = &mut self.conns[slot];
        let Some(fd) = conn.fd.as_ref().map(|fd| fd.as_raw_fd()) else { return Ok(true) };
        loop {
            let space = &mut conn.buf[conn.filled..];
            if space.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "a response does not fit the receive buffer"));
            }
            // SAFETY: `space` is a live, writable buffer of `space.len()` bytes.
            let got = unsafe { libc::recv(fd, space.as_mut_ptr().cast(), space.len(), 0) };
            if got == 0 {
                return Ok(true);
            }
            if got < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(false),
                    Some(libc::EINTR) => continue,
                    Some(libc::ECONNRESET) => return Ok(true),
                    _ => return Err(io::Error::new(e.kind(), format!("recv: {e}"))),
                }
            }
            let full = got as usize == space.len();
            conn.filled += got as usize;
            let answered = count_responses(&mut self.shape, conn)?;
            if answered > 0 {
                self.done += answered as u64;
                self.last_progress = Instant::now();
            }
            // Level-triggered: one read per wakeup unless the buffer filled up.
            if !edge && !full {
                return Ok(false);
            }
        }
    }

    fn register(&self, fd: RawFd, op: libc::c_int, events: u32, slot: usize) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: slot as u64 };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } != 0 {
            return Err(os_error("epoll_ctl"));
        }
        Ok(())
    }
}

/// Writes the rest of `conn`'s batch; true when it is all written, false on `EAGAIN`.
fn write_some(fd: RawFd, requests: &[u8], conn: &mut Conn) -> io::Result<bool> {
    while conn.written < conn.to_write {
        let rest = &requests[conn.written..conn.to_write];
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes; MSG_NOSIGNAL
        // turns a reset peer into EPIPE instead of SIGPIPE.
        let sent = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(false),
                Some(libc::EINTR) => continue,
                _ => return Err(io::Error::new(e.kind(), format!("send: {e}"))),
            }
        }
        conn.written += sent as usize;
    }
    Ok(true)
}

/// Counts the complete responses at the front of `conn.buf`, moves the rest
/// (a partial response) to the front, and returns the count.
fn count_responses(shape: &mut Shape, conn: &mut Conn) -> io::Result<usize> {
    let count = count_answers(shape, &mut conn.buf, &mut conn.filled)?;
    if count > conn.inflight {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{count} responses where {} were due", conn.inflight),
        ));
    }
    conn.inflight -= count;
    Ok(count)
}

/// Counts the complete `200` responses in the first `filled` bytes of `buf`,
/// moves what follows them (a partial response) to the front, and returns
/// the count.
pub fn count_answers(shape: &mut Shape, buf: &mut [u8], filled: &mut usize) -> io::Result<usize> {
    let mut at = 0;
    let mut count = 0;
    while let Some(len) = next_response(shape, &buf[at..*filled])? {
        at += len;
        count += 1;
    }
    buf.copy_within(at..*filled, 0);
    *filled -= at;
    Ok(count)
}

/// The length of the complete `200` response at the front of `buf`, or `None`
/// if it is not all there yet.
fn next_response(shape: &mut Shape, buf: &[u8]) -> io::Result<Option<usize>> {
    const OK: &[u8] = b"HTTP/1.1 200 ";
    let Shape { head, total } = *shape;
    // Fast path: same size and shape as the last answer.
    if total != 0 && buf.len() >= total && buf.starts_with(OK) && &buf[head - 4..head] == b"\r\n\r\n" {
        return Ok(Some(total));
    }
    // Slow path: find the end of the head and its Content-Length.
    let mut line_start = 0;
    let mut content_length = None;
    let head = loop {
        let Some(nl) = buf[line_start..].iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_HEAD {
                return Err(invalid("no end of the response head", buf));
            }
            return Ok(None);
        };
        let line = &buf[line_start..line_start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let next = line_start + nl + 1;
        if line_start == 0 {
            if !line.starts_with(OK) {
                return Err(invalid("not a 200 response", buf));
            }
        } else if line.is_empty() {
            break next;
        } else if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            let digits = line[15..].trim_ascii();
            let parsed = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<usize>().ok());
            content_length = Some(parsed.ok_or_else(|| invalid("bad Content-Length", buf))?);
        }
        line_start = next;
    };
    let total = head + content_length.ok_or_else(|| invalid("no Content-Length", buf))?;
    *shape = Shape { head, total };
    Ok((buf.len() >= total).then_some(total))
}

fn invalid(what: &str, buf: &[u8]) -> io::Error {
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {shown:?}"))
}

fn os_error(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}
