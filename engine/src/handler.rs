//! The application's side of a worker: a [`Handler`] answers each request,
//! reading a [`Request`] that borrows the engine's buffers and writing a
//! [`Response`] into buffers made at start, so answering allocates nothing
//! unless the handler itself does.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::response_fault::ResponseFault;

/// Answers requests; one value per worker process.
///
/// ```
/// use ringmaster_engine::handler::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
///         res.header("Content-Type", "text/plain").body(b"hello world\n");
///     }
/// }
/// ```
pub trait Handler {
    /// Answers one request. The engine adds `Date`, `Server` (unless set),
    /// `Content-Length` and the keep-alive framing; a `HEAD` request is
    /// answered without the body written here, its `Content-Length` that
    /// body's length (so write what a `GET` would get: a `Content-Length`
    /// set here is ignored), and a `204` or `304` without the body written
    /// or a length, a `205` with a length of 0. A panic here costs this
    /// request alone (with `panic = "unwind"`): it is answered `500` and its
    /// connection closes; the worker and this value go on (see
    /// [`crate::panic_guard`]).
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>);

    /// A line the master broadcast to every worker (`ringmaster ctl PATH send TEXT`).
    /// Only processes running when it is sent get it: a worker's process
    /// started later (a restart, a reload, an upgrade) begins without it.
    /// A panic here loses the line for this worker; it serves on.
    fn on_message(&mut self, message: &str) {
        let _ = message;
    }

    /// The same body for every request, if that is all this handler does:
    /// the engine then answers from preformatted pages and never calls
    /// [`Handler::handle`].
    fn fixed_body(&self) -> Option<&[u8]> {
        None
    }

    /// The [`Handler::fixed_body`] as a buffer the engine may keep without
    /// copying it: a long body is then held once per worker, not once here
    /// and once in the engine. `None` (the default): the engine copies
    /// what [`Handler::fixed_body`] returns. Read only when that is `Some`,
    /// and must hold the same bytes.
    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        None
    }

    /// Whether [`Request::peer_addr`] should name the client. Read once,
    /// when the worker starts: with `false` (the default) the engine never
    /// asks the kernel for a client's address and every request's
    /// `peer_addr` is `None`. With `true` it asks once per connection
    /// (`getpeername`, when the connection is accepted or handed over), and
    /// on io_uring the worker's own accepts (`shared`, `reuseport`) make
    /// plain descriptors rather than the ring's direct ones, which no
    /// system call can name (a plain one costs the kernel a descriptor
    /// lookup on each receive and send).
    fn wants_peer_addr(&self) -> bool {
        false
    }
}

/// The binary's default handler: `200 OK` with the same body for every request.
#[derive(Clone, Debug)]
pub struct FixedBody {
    /// Shared with the engine's preformatted replies (see [`Handler::shared_fixed_body`]).
    body: Arc<[u8]>,
}

impl FixedBody {
    /// Answers every request with `body` (`Content-Type: text/plain`).
    pub fn new(body: impl Into<Vec<u8>>) -> FixedBody {
        FixedBody { body: Arc::from(body.into()) }
    }
}

impl Handler for FixedBody {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain").body(&self.body);
    }

    fn fixed_body(&self) -> Option<&[u8]> {
        Some(&self.body)
    }

    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        Some(Arc::clone(&self.body))
    }
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// One header field of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The field name, as the client spelled it.
    pub name: &'a str,
    /// The field value, as sent (no surrounding whitespace).
    pub value: &'a [u8],
}

/// A complete request, borrowed from the engine's buffers for the length of
/// one [`Handler::handle`] call.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) version: Version,
    pub(crate) headers: &'a [Header<'a>],
    pub(crate) body: &'a [u8],
    pub(crate) peer: Option<SocketAddr>,
}

impl<'a> Request<'a> {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent: path and query, e.g. `/search?q=x`, or
    /// an absolute URI (`http://host/search?q=x`), which a server must
    /// accept too (RFC 9112 §3.2.2).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path: the target up to `?`, without the scheme and authority of
    /// an absolute URI (`/a` for `http://host/a?b`; `/` when it has no
    /// path), so that routes match whichever form the client sent (until
    /// 2026-12-05 it was `http://host/a`: a route for `/a` answered `404`).
    /// A target with a fragment (`#`) is refused before a handler sees it
    /// (until 2026-12-07 the fragment was read as path: `http://a#/admin`
    /// had the path `/admin`, and `/a#b` the path `/a#b`).
    pub fn path(&self) -> &'a str {
        crate::http::path_of(self.target)
    }

    /// The host the request is for (`host` or `host:port`): the authority
    /// of an absolute-form target, which wins over the `Host` field (RFC
    /// 9112 §3.2.2: a server must then ignore that field, which may name
    /// another host), else the `Host` field; `None` without either (an
    /// HTTP/1.0 request may have no `Host`). Route on this, not on
    /// `header("host")`, so that both forms reach the same handler code.
    pub fn host(&self) -> Option<&'a [u8]> {
        match crate::http::authority_of(self.target) {
            Some(authority) => Some(authority.as_bytes()),
            None => self.header("host"),
        }
    }

    /// The query: the target after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        crate::http::query_of(self.target)
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Every header field, in the order sent.
    pub fn headers(&self) -> &'a [Header<'a>] {
        self.headers
    }

    /// The value of the first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// The complete body (a `chunked` one decoded), up to `--max-body`
    /// bytes. A chunked body's trailer fields are read and dropped:
    /// [`Request::headers`] holds the head's alone.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The client's address and port: the other end of the TCP connection
    /// this request came on, as Node's `req.socket.remoteAddress` and
    /// `remotePort` (behind a proxy or a load balancer, that is the proxy's;
    /// the client it speaks for is in a header such as `Forwarded`).
    ///
    /// On a dual-stack listener (`[::]`), an IPv4 client is an IPv4-mapped
    /// IPv6 address, `[::ffff:127.0.0.1]:54321`, as in Node
    /// (`::ffff:127.0.0.1`); [`std::net::IpAddr::to_canonical`] turns it
    /// into `127.0.0.1`.
    ///
    /// `None` unless the handler asked for it ([`Handler::wants_peer_addr`]),
    /// and when the kernel could not name the peer as the connection was
    /// taken (the client had already reset it).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// A response being written: status, header fields and body go into buffers
/// the engine made at start: the body up to `--max-response` bytes, the
/// header fields the handler adds up to 4 KiB (each field's name, `: `,
/// value and line end, whatever `--max-response` is). Writing more than
/// fits in either, or a header that is not a valid field, turns the answer
/// into `500 Internal Server Error`; from then on its `io::Write` fails with
/// an error naming that first cause (and `fmt::Write` with `fmt::Error`).
#[derive(Debug)]
pub struct Response<'a> {
    status: u16,
    head: &'a mut [u8],
    head_len: usize,
    body: &'a mut [u8],
    body_len: usize,
    server_set: bool,
    close: bool,
    /// The first thing written that cannot be sent: the answer is `500`.
    fault: Option<ResponseFault>,
}

/// Header fields the engine writes itself; a handler's own are ignored.
const ENGINE_FIELDS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

impl<'a> Response<'a> {
    pub(crate) fn new(head: &'a mut [u8], body: &'a mut [u8]) -> Response<'a> {
        Response { status: 200, head, head_len: 0, body, body_len: 0, server_set: false, close: false, fault: None }
    }

    /// Keeps the first fault: a later write's error still names the cause.
    fn break_with(&mut self, fault: ResponseFault) {
        self.fault.get_or_insert(fault);
    }

    /// Sets the status code (`200` unless set); from 200 to 599.
    pub fn status(&mut self, code: u16) -> &mut Self {
        if (200..=599).contains(&code) {
            self.status = code;
        } else {
            self.break_with(ResponseFault::Status(code));
        }
        self
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding`,
    /// `Connection` and `Date` are the engine's and are ignored here (to
    /// close the connection, [`Response::close`]). The fields added take
    /// at most 4 KiB in all (see [`Response`]).
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        if !is_token(name) {
            self.break_with(ResponseFault::FieldName);
            return self;
        }
        if !value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80) {
            self.break_with(ResponseFault::FieldValue);
            return self;
        }
        if ENGINE_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return self;
        }
        self.server_set |= name.eq_ignore_ascii_case("server");
        let needed = name.len() + 2 + value.len() + 2;
        let Some(room) = self.head.get_mut(self.head_len..self.head_len + needed) else {
            self.break_with(ResponseFault::FieldsFull);
            return self;
        };
        let (name_part, rest) = room.split_at_mut(name.len());
        name_part.copy_from_slice(name.as_bytes());
        rest[..2].copy_from_slice(b": ");
        rest[2..2 + value.len()].copy_from_slice(value);
        rest[2 + value.len()..].copy_from_slice(b"\r\n");
        self.head_len += needed;
        self
    }

    /// Appends `bytes` to the body.
    pub fn body(&mut self, bytes: &[u8]) -> &mut Self {
        match self.body.get_mut(self.body_len..self.body_len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.body_len += bytes.len();
            }
            None => self.break_with(ResponseFault::BodyFull),
        }
        self
    }

    /// Closes the connection after this response.
    pub fn close(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    pub(crate) fn parts(&self) -> Written<'_> {
        Written {
            status: self.status,
            fields: &self.head[..self.head_len],
            body: &self.body[..self.body_len],
            server_set: self.server_set,
            close: self.close,
            broken: self.fault.is_some(),
        }
    }
}

/// What a handler wrote, for the engine to frame.
#[derive(Debug)]
pub(crate) struct Written<'a> {
    pub status: u16,
    pub fields: &'a [u8],
    pub body: &'a [u8],
    pub server_set: bool,
    pub close: bool,
    pub broken: bool,
}

impl fmt::Write for Response<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.body(s.as_bytes());
        if self.fault.is_some() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl io::Write for Response<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body(buf);
        match self.fault {
            Some(fault) => Err(fault.io_error()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// RFC 9110 `token`: the characters a field name may use.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(crate::http::is_tchar)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn a_request_splits_its_target_and_finds_headers_by_any_case() {
        let headers = [Header { name: "Content-Type", value: b"text/plain" }];
        let req = Request {
            method: "GET",
            target: "/a/b?x=1&y",
            version: Version::Http11,
            headers: &headers,
            body: b"",
            peer: None,
        };
        assert_eq!((req.path(), req.query()), ("/a/b", Some("x=1&y")));
        assert_eq!(req.header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(req.header("accept"), None);
        let bare = Request { target: "/", ..req };
        assert_eq!((bare.path(), bare.query()), ("/", None));
    }

    #[test]
    fn an_absolute_uri_target_has_the_path_of_its_origin_form() {
        let req = Request { method: "GET", target: "", version: Version::Http11, headers: &[], body: b"", peer: None };
        for (target, path, query) in [
            ("http://a.example:8080/a/b?x=1", "/a/b", Some("x=1")),
            ("https://a/", "/", None),
            ("http://a", "/", None),
            ("http://a?x", "/", Some("x")),
            ("http://[::1]:80/p", "/p", None),
            ("*", "*", None),
            ("/p://q", "/p://q", None),
            // A fragment, which the parser refuses (400), would be no part
            // of the path or the query, as the host ends before it: until
            // 2026-12-07 `http://a#/admin` had the path `/admin`.
            ("http://a#/admin", "/", None),
            ("http://a/b#c", "/b", None),
            ("/a#b", "/a", None),
            ("/a#b?c=1", "/a", None),
            ("/a?c=1#f", "/a", Some("c=1")),
            ("http://a?x#/y", "/", Some("x")),
        ] {
            let req = Request { target, ..req };
            assert_eq!((req.path(), req.query()), (path, query), "{target}");
            assert_eq!(req.target(), target);
        }
    }

    #[test]
    fn the_host_of_an_absolute_uri_wins_over_the_host_field() {
        let headers = [Header { name: "Host", value: b"field.example" }];
        let req =
            Request { method: "GET", target: "/", version: Version::Http11, headers: &headers, body: b"", peer: None };
        assert_eq!(req.host(), Some(&b"field.example"[..]), "origin-form: the Host field");
        for (target, host) in [
            ("http://a.example:8080/a/b?x=1", "a.example:8080"),
            ("https://a/", "a"),
            ("http://a", "a"),
            ("http://a?x", "a"),
            ("http://a#f", "a"),
            ("http://user:pw@b.example/p", "b.example"),
            ("http://[::1]:80/p", "[::1]:80"),
        ] {
            assert_eq!(Request { target, ..req }.host(), Some(host.as_bytes()), "{target}");
        }
        assert_eq!(Request { target: "*", ..req }.host(), Some(&b"field.example"[..]), "asterisk-form");
        let none = Request { headers: &[], version: Version::Http10, ..req };
        assert_eq!(none.host(), None);
    }

    #[test]
    fn a_response_keeps_its_fields_and_body_in_the_buffers_given() {
        let (mut head, mut body) = ([0u8; 64], [0u8; 16]);
        let mut res = Response::new(&mut head, &mut body);
        res.status(201).header("X-A", "1").header("Content-Length", "99").body(b"ab");
        write!(res, "{}", 7).expect("fits");
        let written = res.parts();
        assert_eq!(written.status, 201);
        assert_eq!(written.fields, b"X-A: 1\r\n", "the engine's own fields are ignored");
        assert_eq!(written.body, b"ab7");
        assert!(!written.broken);
    }

    #[test]
    fn too_much_or_invalid_breaks_the_response() {
        let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
        let mut res = Response::new(&mut head, &mut body);
        res.body(b"12345");
        assert!(res.parts().broken, "over the body buffer");
        let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
        let mut res = Response::new(&mut head, &mut body);
        res.header("X-Bad", "a\r\nInjected: yes");
        assert!(res.parts().broken, "CR LF in a value");
        let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
        let mut res = Response::new(&mut head, &mut body);
        res.header("Bad Name", "v");
        assert!(res.parts().broken, "a space in a name");
        let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
        let mut res = Response::new(&mut head, &mut body);
        res.status(99);
        assert!(res.parts().broken, "not a final status");
    }
}
