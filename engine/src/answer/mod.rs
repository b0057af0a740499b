//! Answering with the application's handler: the request view over the
//! head's bytes, the handler run, and what it wrote framed into a
//! connection's output buffer.
//!
//! This file: what a worker answering needs, and the handler run on one
//! request; `scratch.rs`: the buffers a handler writes its response into;
//! `body_pool.rs`: the buffers for request bodies that came in pieces;
//! `frame.rs`: the framing around what the handler wrote (status line,
//! `Date`, `Content-Length`, `Connection`, the `500`); `cursor.rs`: the
//! writer into a fixed buffer they use.

mod body_pool;
mod cursor;
mod frame;
mod scratch;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use self::cursor::Cursor;
use self::frame::{error_500, frame};
use crate::handler::{Handler, Header, Request, Response, Version};
use crate::http::{with_head, Parsed, MAX_HEADERS};
use crate::panic_guard::{guarded, Call};

pub use self::body_pool::BodyPool;
pub use self::frame::{Answered, Framing, CLOSE, KEEP_ALIVE};
pub use self::scratch::ResponseScratch;
pub(crate) use self::scratch::FIELDS;

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
