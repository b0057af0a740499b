//! A request as a handler reads it: method, target (path, query, host),
//! version, header fields, body and client, borrowed from the engine's
//! buffers.

use std::net::SocketAddr;

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
/// one [`Handler::handle`](super::Handler::handle) call.
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
    /// `None` unless the handler asked for it
    /// ([`Handler::wants_peer_addr`](super::Handler::wants_peer_addr)), and
    /// when the kernel could not name the peer as the connection was taken
    /// (the client had already reset it).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}
