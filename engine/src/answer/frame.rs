//! The framing of what a handler wrote: status line, `Server`, `Date`,
//! `Content-Length` and the `Connection` field its exchange asks for, or the
//! `500` for a response that cannot be sent.

use super::cursor::Cursor;
use crate::handler::Written;
use crate::reason::{reason, LONGEST};

/// Room for the status line and the engine's own fields around a response:
/// status line (`HTTP/1.1 NNN ` and the longest reason phrase), `Server`,
/// `Date`, `Content-Length` (up to 20 digits), `Connection: keep-alive`
/// and the empty line.
pub(super) const FRAMING: usize = 13 + LONGEST + 2 + 20 + 37 + 38 + 24 + 2;

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

/// Writes status line, fields and body into `out`; returns their length and
/// where a `Connection: keep-alive` value starts. `None` when it does not fit.
pub(super) fn frame(
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
pub(super) fn error_500(
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
