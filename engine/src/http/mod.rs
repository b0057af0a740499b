//! HTTP/1.1 requests (RFC 9112) as a per-connection state machine, and the
//! replies it asks the worker to send.
//!
//! The parser never allocates: it borrows the bytes it is given, keeps a few
//! integers of state between reads, and answers with a [`Reply`] the worker
//! turns into a preformatted response.

mod chunked;
mod head;
mod limits;
mod parser;
mod pieces;
mod target;

pub use chunked::{ChunkedBody, ChunkedProgress};
pub(crate) use head::{with_head, Parsed};
pub use limits::Limits;
pub(crate) use limits::MAX_HEADERS;
pub use parser::{RequestParser, Step};
pub(crate) use target::{authority_of, path_of, query_of};

/// A `tchar` of RFC 9110 §5.6.2: what a method, a field name or a chunk
/// extension's name is made of.
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What the worker sends back for one request (or before it, for `Continue`).
///
/// Every variant has a preformatted response (see `response/`); the parser
/// picks one and the worker queues it, so a reply is one byte, never a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// `200`, keep-alive (HTTP/1.1 default).
    Ok = 0,
    /// `200` with `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    OkKeepAlive,
    /// `200` with `Connection: close`; the server closes after it.
    OkClose,
    /// `HEAD`: the headers of `Ok`.
    Head,
    /// `HEAD`: the headers of `OkKeepAlive`.
    HeadKeepAlive,
    /// `HEAD`: the headers of `OkClose`.
    HeadClose,
    /// `100 Continue`, sent before the body of an `Expect: 100-continue` request.
    Continue,
    /// `400 Bad Request`: malformed request line, header or framing.
    BadRequest,
    /// `408 Request Timeout`: a body that did not arrive in time (`--body-timeout`).
    RequestTimeout,
    /// `413 Content Too Large`: a body over `--max-body`.
    ContentTooLarge,
    /// `414 URI Too Long`: a request line that does not end within `--max-header`.
    UriTooLong,
    /// `417 Expectation Failed`: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// `431 Request Header Fields Too Large`: a header block over `--max-header`.
    HeaderTooLarge,
    /// `501 Not Implemented`: a transfer coding other than `chunked` before
    /// the final `chunked`.
    NotImplemented,
    /// `503 Service Unavailable`: no worker can take the connection.
    ServiceUnavailable,
    /// `505 HTTP Version Not Supported`: a request line of HTTP/2 or another
    /// major version than 1 (a later HTTP/1 minor version is served as 1.1).
    VersionNotSupported,
    /// `200 OK`, `ready`: the health path while the worker serves (`--health-path`).
    HealthReady,
    /// `503 Service Unavailable`, `draining`: the health path once the worker
    /// drains or its master has marked it a lame duck.
    HealthDraining,
}

impl Reply {
    /// Every reply, in discriminant order (index = `reply as usize`).
    pub const ALL: [Reply; 18] = [
        Reply::Ok,
        Reply::OkKeepAlive,
        Reply::OkClose,
        Reply::Head,
        Reply::HeadKeepAlive,
        Reply::HeadClose,
        Reply::Continue,
        Reply::BadRequest,
        Reply::RequestTimeout,
        Reply::ContentTooLarge,
        Reply::UriTooLong,
        Reply::ExpectationFailed,
        Reply::HeaderTooLarge,
        Reply::NotImplemented,
        Reply::ServiceUnavailable,
        Reply::VersionNotSupported,
        Reply::HealthReady,
        Reply::HealthDraining,
    ];

    /// True when the server closes the connection after sending this reply.
    pub fn closes(self) -> bool {
        !matches!(self, Reply::Ok | Reply::OkKeepAlive | Reply::Head | Reply::HeadKeepAlive | Reply::Continue)
    }

    /// True when this reply answers a request (everything but `100 Continue`).
    pub fn is_final(self) -> bool {
        self != Reply::Continue
    }

    /// The same reply, but closing the connection (used while a worker drains).
    pub fn closing(self) -> Reply {
        match self {
            Reply::Ok | Reply::OkKeepAlive => Reply::OkClose,
            Reply::Head | Reply::HeadKeepAlive => Reply::HeadClose,
            other => other,
        }
    }

    /// Status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => (200, "OK"),
            Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose => (200, "OK"),
            Reply::Continue => (100, "Continue"),
            Reply::BadRequest => (400, "Bad Request"),
            Reply::RequestTimeout => (408, "Request Timeout"),
            Reply::ContentTooLarge => (413, "Content Too Large"),
            Reply::UriTooLong => (414, "URI Too Long"),
            Reply::ExpectationFailed => (417, "Expectation Failed"),
            Reply::HeaderTooLarge => (431, "Request Header Fields Too Large"),
            Reply::NotImplemented => (501, "Not Implemented"),
            Reply::ServiceUnavailable | Reply::HealthDraining => (503, "Service Unavailable"),
            Reply::VersionNotSupported => (505, "HTTP Version Not Supported"),
            Reply::HealthReady => (200, "OK"),
        }
    }
}
