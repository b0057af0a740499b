//! A response as a handler writes it, into buffers made at start: status,
//! fields checked as they come, body; the first fault turns it into a `500`.

use std::fmt;
use std::io;

use super::response_fault::ResponseFault;

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
