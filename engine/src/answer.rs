//! Answering with the application's handler: the buffers made at start
//! (request bodies that came in pieces, the response being written), the
//! request view over the head's bytes, and the framing of what the handler
//! wrote into a connection's output buffer.

use std::net::SocketAddr;

use crate::handler::{Handler, Header, Request, Response, Version, Written};
use crate::http::{with_head, Parsed, MAX_HEADERS};
use crate::lazy_bytes::LazyBytes;
use crate::panic_guard::{guarded, Call};
use crate::reason::{reason, LONGEST};

/// Room for the status line and the engine's own fields around a response:
/// status line (`HTTP/1.1 NNN ` and the longest reason phrase), `Server`,
/// `Date`, `Content-Length` (up to 20 digits), `Connection: keep-alive`
/// and the empty line.
const FRAMING: usize = 13 + LONGEST + 2 + 20 + 37 + 38 + 24 + 2;
/// Room for the fields a handler writes.
pub(crate) const FIELDS: usize = 4096;

/// What a worker answering with its own handler needs.
pub struct Dynamic<'a> {
    /// The application.
    pub handler: &'a mut dyn Handler,
    /// Where the handler writes.
    pub scratch: &'a mut ResponseScratch,
    /// Buffers for requests whose body came in pieces.
    pub bodies: &'a mut BodyPool,
    /// The connection's client, when the handler asked for it
    /// ([`Handler::wants_peer_addr`]): the driver's, read when it took the
    /// connection.
    pub peer: Option<SocketAddr>,
}

impl std::fmt::Debug for Dynamic<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamic").field("bodies", &self.bodies).field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// How a worker answers requests.
#[derive(Debug)]
pub enum Answering<'a> {
    /// From the preformatted pages (a [`Handler::fixed_body`] handler).
    Fixed,
    /// With the application's handler.
    Dynamic(Dynamic<'a>),
}

/// The buffers a handler writes its response into (one per worker).
#[derive(Debug)]
pub struct ResponseScratch {
    fields: Box<[u8]>,
    body: Box<[u8]>,
    /// Times the handler panicked (see [`crate::panic_guard`]).
    panics: u64,
}

impl ResponseScratch {
    /// Room for responses of up to `max_response` bytes of body; an error
    /// when the allocator refuses the memory (see `fallible.rs`).
    pub fn new(max_response: usize) -> std::io::Result<ResponseScratch> {
        Ok(ResponseScratch {
            fields: crate::fallible::zeroed(FIELDS)?,
            body: crate::fallible::zeroed(max_response)?,
            panics: 0,
        })
    }

    /// The most bytes one framed response takes in an output buffer.
    pub fn largest_framed(&self) -> usize {
        FRAMING + FIELDS + self.body.len()
    }

    /// Times the handler panicked, in `handle` or `on_message`.
    pub fn panics(&self) -> u64 {
        self.panics
    }

    /// Counts a panic of the handler's outside [`answer`] (`on_message`).
    pub fn count_panic(&mut self) {
        self.panics += 1;
    }
}

/// Fixed buffers for request bodies that did not arrive with their head,
/// and for chunked ones (decoded as they are gathered), each big enough
/// for a head and a body at their limits.
#[derive(Debug)]
pub struct BodyPool {
    memory: LazyBytes,
    size: usize,
    free: Vec<u32>,
}

impl BodyPool {
    /// `count` buffers of `size` bytes (the memory is touched only when
    /// used); an error when the address space has no room for them.
    pub fn new(count: usize, size: usize) -> std::io::Result<BodyPool> {
        let len = count.checked_mul(size).ok_or_else(|| std::io::Error::other("the size overflows"))?;
        Ok(BodyPool { memory: LazyBytes::new(len)?, size, free: (0..count as u32).rev().collect() })
    }

    /// A free buffer, or `None` when all are in use.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Buffers not in use.
    #[cfg(test)]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Gives buffer `index` back, its first `used` bytes used: the pages of
    /// a large body go back to the kernel (see [`LazyBytes::release_touched`]).
    pub fn give(&mut self, index: u32, used: usize) {
        debug_assert!(!self.free.contains(&index), "buffer {index} given back twice");
        let start = index as usize * self.size;
        self.memory.release_touched(start..start + self.size, used);
        self.free.push(index);
    }

    /// Buffer `index`.
    pub fn buffer(&mut self, index: u32) -> &mut [u8] {
        let start = index as usize * self.size;
        &mut self.memory[start..start + self.size]
    }

    /// The first `len` bytes of buffer `index`.
    pub fn contents(&self, index: u32, len: usize) -> &[u8] {
        let start = index as usize * self.size;
        &self.memory[start..start + len.min(self.size)]
    }
}

/// How the response ends the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1 keep-alive: no `Connection` field.
    KeepAlive,
    /// Keep-alive said in a `Connection: keep-alive` field: for an HTTP/1.0
    /// client that asked for it, and for every answer while the worker
    /// drains, so that the last one can still become `close` (see
    /// [`Answered::keep_alive_at`]).
    KeepAliveField,
    /// The connection closes after it.
    Close,
}

/// A handler's framed response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// Its bytes at the start of the output.
    pub len: usize,
    /// The handler asked to close the connection after it.
    pub closes: bool,
    /// Where the value of its `Connection: keep-alive` field starts
    /// ([`Framing::KeepAliveField`]).
    pub keep_alive_at: Option<usize>,
}

/// The value a [`Framing::KeepAliveField`] answer's `Connection` field has,
/// and the one it takes when it turns out the last.
pub const KEEP_ALIVE: &[u8] = b"keep-alive";
/// See [`KEEP_ALIVE`].
pub const CLOSE: &[u8] = b"close";

/// Runs `handler` on the request in `head` (a complete header block) and
/// `body`, from `peer`, and frames its response into `out`. `None` when
/// `head` does not parse (it did once, so it cannot) or the response does
/// not fit.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    handler: &mut dyn Handler,
    scratch: &mut ResponseScratch,
    head: &[u8],
    body: &[u8],
    peer: Option<SocketAddr>,
    head_only: bool,
    framing: Framing,
    date: &[u8],
    out: &mut [u8],
) -> Option<Answered> {
    with_head(head, |parsed| {
        let Parsed::Complete(_, parsed) = parsed else { return None };
        let mut fields = [Header { name: "", value: b"" }; MAX_HEADERS];
        let count = parsed.headers.len();
        for (field, header) in fields.iter_mut().zip(parsed.headers.iter()) {
            *field = Header { name: header.name, value: header.value };
        }
        let request = Request {
            method: parsed.method?,
            target: parsed.path?,
            // A later HTTP/1 minor version parses as 1 (HTTP/1.1).
            version: if parsed.version == Some(0) { Version::Http10 } else { Version::Http11 },
            headers: &fields[..count],
            body,
            peer,
        };
        respond(handler, scratch, &request, head_only, framing, date, out)
    })
}

/// Runs `handler` on `request` and frames its response into `out`.
fn respond(
    handler: &mut dyn Handler,
    scratch: &mut ResponseScratch,
    request: &Request<'_>,
    head_only: bool,
    framing: Framing,
    date: &[u8],
    out: &mut [u8],
) -> Option<Answered> {
    let mut response = Response::new(&mut scratch.fields, &mut scratch.body);
    if guarded(Call::Handle, || handler.handle(request, &mut response)).is_none() {
        // What it wrote before it panicked is dropped; the connection ends
        // after the 500, so a half-done exchange cannot be taken for another.
        scratch.panics += 1;
        let mut cursor = Cursor { out, at: 0 };
        let (len, _) = error_500(&mut cursor, head_only, Framing::Close, date)?;
        return Some(Answered { len, closes: true, keep_alive_at: None });
    }
    let written = response.parts();
    let framing = if written.close { Framing::Close } else { framing };
    let (len, keep_alive_at) = frame(&written, head_only, framing, date, out)?;
    Some(Answered { len, closes: written.close, keep_alive_at })
}

/// Writes status line, fields and body into `out`; returns their length and
/// where a `Connection: keep-alive` value starts. `None` when it does not fit.
fn frame(
    written: &Written<'_>,
    head_only: bool,
    framing: Framing,
    date: &[u8],
    out: &mut [u8],
) -> Option<(usize, Option<usize>)> {
    let mut cursor = Cursor { out, at: 0 };
    if written.broken {
        return error_500(&mut cursor, head_only, framing, date);
    }
    let status = written.status;
    cursor.put(b"HTTP/1.1 ")?;
    cursor.number(u64::from(status))?;
    cursor.put(b" ")?;
    cursor.put(reason(status).as_bytes())?;
    cursor.put(b"\r\n")?;
    if !written.server_set {
        cursor.put(b"Server: ringmaster\r\n")?;
    }
    cursor.put(b"Date: ")?;
    cursor.put(date)?;
    cursor.put(b"\r\n")?;
    cursor.put(written.fields)?;
    // 204 and 304 carry no body, and no length for one; 205 carries none
    // either (RFC 9110 §15.3.6: a server MUST NOT generate content), its
    // length said as 0 (until 2026-12-06 what the handler wrote went out).
    let bodyless = status == 204 || status == 304;
    let body = if status == 205 { &[][..] } else { written.body };
    if !bodyless {
        cursor.put(b"Content-Length: ")?;
        cursor.number(body.len() as u64)?;
        cursor.put(b"\r\n")?;
    }
    let keep_alive_at = connection_field(&mut cursor, framing)?;
    cursor.put(b"\r\n")?;
    if !head_only && !bodyless {
        cursor.put(body)?;
    }
    Some((cursor.at, keep_alive_at))
}

/// The `500` for a response the handler could not finish; a `HEAD`
/// request gets its head alone, as any answer to one.
fn error_500(
    cursor: &mut Cursor<'_>,
    head_only: bool,
    framing: Framing,
    date: &[u8],
) -> Option<(usize, Option<usize>)> {
    const BODY: &[u8] = b"Internal Server Error\n";
    cursor.put(b"HTTP/1.1 500 Internal Server Error\r\nServer: ringmaster\r\nDate: ")?;
    cursor.put(date)?;
    cursor.put(b"\r\nContent-Type: text/plain\r\nContent-Length: ")?;
    cursor.number(BODY.len() as u64)?;
    cursor.put(b"\r\n")?;
    let keep_alive_at = connection_field(cursor, framing)?;
    cursor.put(b"\r\n")?;
    if !head_only {
        cursor.put(BODY)?;
    }
    Some((cursor.at, keep_alive_at))
}

/// Writes the `Connection` field `framing` asks for; returns where a
/// `keep-alive` value starts.
fn connection_field(cursor: &mut Cursor<'_>, framing: Framing) -> Option<Option<usize>> {
    match framing {
        Framing::KeepAlive => Some(None),
        Framing::KeepAliveField => {
            cursor.put(b"Connection: ")?;
            let at = cursor.at;
            cursor.put(KEEP_ALIVE)?;
            cursor.put(b"\r\n")?;
            Some(Some(at))
        }
        Framing::Close => {
            cursor.put(b"Connection: close\r\n")?;
            Some(None)
        }
    }
}

/// Writes into a fixed buffer, failing (`None`) rather than growing.
struct Cursor<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let room = self.out.get_mut(self.at..self.at + bytes.len())?;
        room.copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }

    fn number(&mut self, mut n: u64) -> Option<()> {
        let mut digits = [0u8; 20];
        let mut first = digits.len();
        loop {
            first -= 1;
            digits[first] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[first..])
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    struct Echo;

    impl Handler for Echo {
        fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
            if req.path() == "/missing" {
                res.status(404);
                return;
            }
            if req.path() == "/reset" {
                res.status(205).body(b"content a 205 must not carry");
                return;
            }
            if req.path() == "/close" {
                res.close();
            }
            if req.path() == "/peer" {
                let _ = write!(res, "{:?}", req.peer_addr());
                return;
            }
            if req.path() == "/panic" {
                res.header("X-Half", "done").body(b"half");
                panic!("the handler panics (expected by the test)");
            }
            res.header("X-Method", req.method()).body(req.body());
        }
    }

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn run(head: &[u8], body: &[u8], head_only: bool, framing: Framing) -> (String, bool) {
        let mut handler = Echo;
        let mut scratch = ResponseScratch::new(64).expect("a scratch");
        let mut out = [0u8; 512];
        let answered =
            answer(&mut handler, &mut scratch, head, body, None, head_only, framing, DATE, &mut out).expect("fits");
        if let Some(at) = answered.keep_alive_at {
            assert_eq!(&out[at..at + KEEP_ALIVE.len()], KEEP_ALIVE);
        }
        (String::from_utf8(out[..answered.len].to_vec()).expect("ASCII"), answered.closes)
    }

    #[test]
    fn the_engine_frames_what_the_handler_wrote() {
        let (text, close) = run(b"POST /echo HTTP/1.1\r\nHost: a\r\n\r\n", b"hi", false, Framing::KeepAlive);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Method: POST\r\n\
             Content-Length: 2\r\n\r\nhi"
        );
        assert!(!close);
    }

    #[test]
    fn head_gets_the_length_without_the_body_and_framing_is_kept() {
        let (text, _) = run(b"HEAD / HTTP/1.0\r\n\r\n", b"", true, Framing::KeepAliveField);
        assert!(text.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"), "{text}");
        let (text, close) = run(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
        assert!(close);
        assert!(text.contains("Connection: close\r\n"), "{text}");
        let (text, _) = run(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    }

    /// A `205 Reset Content` carries no content (RFC 9110 §15.3.6), whatever
    /// the handler wrote: until 2026-12-06 its body went out.
    #[test]
    fn a_205_goes_without_the_body_written() {
        let (text, close) = run(b"POST /reset HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
        assert!(text.starts_with("HTTP/1.1 205 "), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        assert!(!close);
    }

    /// The handler sees a later HTTP/1 minor version as 1.1: `answer`
    /// parses the head again, and must take what the parser took.
    #[test]
    fn a_later_http1_minor_version_reaches_the_handler_as_http11() {
        let (text, close) = run(b"PUT /echo HTTP/1.2\r\nHost: a\r\n\r\n", b"hi", false, Framing::KeepAlive);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("X-Method: PUT\r\n") && text.ends_with("\r\n\r\nhi"), "{text}");
        assert!(!close);
    }

    /// The driver's address of the connection's client reaches the
    /// handler as it was given, `None` when there is none.
    #[test]
    fn the_peer_given_reaches_the_handler() {
        let mut handler = Echo;
        let mut scratch = ResponseScratch::new(64).expect("a scratch");
        let mut out = [0u8; 512];
        let head = b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n";
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().expect("an address");
        for (peer, said) in [(None, "None"), (Some(mapped), "Some([::ffff:127.0.0.1]:40000)")] {
            let answered =
                answer(&mut handler, &mut scratch, head, b"", peer, false, Framing::KeepAlive, DATE, &mut out)
                    .expect("fits");
            let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
            assert!(text.ends_with(&format!("\r\n\r\n{said}")), "{text}");
        }
    }

    /// The head of any status fits the room kept for it, its length said
    /// in 20 digits (the most a `u64` takes) rather than the 1 here.
    #[test]
    fn the_head_of_every_status_fits_the_framing_room() {
        for status in 200..=599 {
            let written = Written { status, fields: b"", body: b"x", server_set: false, close: false, broken: false };
            let mut out = [0u8; 512];
            let (len, _) = frame(&written, false, Framing::KeepAliveField, DATE, &mut out).expect("fits");
            let bodyless = status == 204 || status == 304;
            let head = if bodyless { len } else { len - 1 + 19 };
            assert!(head <= FRAMING, "{status}: {head} bytes of head");
        }
    }

    #[test]
    fn a_response_too_large_becomes_500() {
        let (text, _) = run(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", &[b'x'; 100], false, Framing::KeepAlive);
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nInternal Server Error\n"), "{text}");
    }

    #[test]
    fn a_head_request_whose_response_is_too_large_gets_a_500_without_a_body() {
        let (text, _) = run(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &[b'x'; 100], true, Framing::KeepAlive);
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
        assert!(
            text.ends_with("Content-Length: 22\r\n\r\n"),
            "the head alone, else a pipelined answer after it would be misread: {text}"
        );
    }

    #[test]
    fn a_panicking_handler_costs_its_request_a_500_and_the_connection() {
        let mut handler = Echo;
        let mut scratch = ResponseScratch::new(64).expect("a scratch");
        let mut out = [0u8; 512];
        for (head_only, framing) in [(false, Framing::KeepAlive), (true, Framing::KeepAliveField)] {
            let head: &[u8] = if head_only {
                b"HEAD /panic HTTP/1.1\r\nHost: a\r\n\r\n"
            } else {
                b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n"
            };
            let answered =
                answer(&mut handler, &mut scratch, head, b"", None, head_only, framing, DATE, &mut out).expect("fits");
            let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
            assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
            assert!(
                text.contains("Connection: close\r\n") && !text.contains("X-Half") && !text.contains("half"),
                "{text}"
            );
            assert_eq!(text.ends_with("\r\n\r\n"), head_only, "{text}");
            assert!(answered.closes && answered.keep_alive_at.is_none());
        }
        assert_eq!(scratch.panics(), 2);
        // The next request is answered as usual, nothing of the half-written one in it.
        let answered = answer(
            &mut handler,
            &mut scratch,
            b"POST /echo HTTP/1.1\r\nHost: a\r\n\r\n",
            b"hi",
            None,
            false,
            Framing::KeepAlive,
            DATE,
            &mut out,
        )
        .expect("fits");
        let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nhi") && !text.contains("X-Half"),
            "{text}"
        );
        assert!(!answered.closes);
    }

    #[test]
    fn body_buffers_are_lent_and_given_back() {
        let mut pool = BodyPool::new(2, 8).expect("a pool");
        let a = pool.take().expect("one");
        let b = pool.take().expect("two");
        assert!(pool.take().is_none());
        pool.buffer(a).copy_from_slice(b"12345678");
        pool.give(a, 8);
        assert_eq!(pool.take(), Some(a));
        assert_ne!(a, b);
    }

    #[test]
    fn a_body_buffer_given_back_after_a_large_body_gives_its_pages_back() {
        let size = 4 * crate::lazy_bytes::KEPT;
        let mut pool = BodyPool::new(1, size).expect("a pool");
        let index = pool.take().expect("one");
        pool.buffer(index).fill(7);
        pool.give(index, 100);
        assert!(pool.contents(index, size).iter().all(|&b| b == 7), "a small body's buffer is left as it is");
        assert_eq!(pool.take(), Some(index));
        pool.give(index, size);
        let kept = crate::lazy_bytes::KEPT;
        assert!(pool.contents(index, kept).iter().all(|&b| b == 7), "its first bytes stay");
        assert!(pool.contents(index, size)[kept..].iter().all(|&b| b == 0), "the rest is given back");
    }
}
