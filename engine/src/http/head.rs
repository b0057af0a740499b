//! A request's header block, parsed by `httparse`, with the HTTP versions
//! `httparse` refuses: it knows only `HTTP/1.0` and `HTTP/1.1`. A later
//! HTTP/1 minor version (`HTTP/1.2`) is read as HTTP/1.1, as RFC 9110 §2.5
//! asks of a server that implements 1.1; a well-formed request line of
//! another major version (`HTTP/2.0`, `HTTP/3.0`) is told apart from a
//! malformed one, so that it gets `505`, not `400` (RFC 9110 §15.6.6).

use std::mem::MaybeUninit;

use httparse::{Header, Status};

use super::is_tchar;
use super::limits::MAX_HEADERS;
use super::pieces::never_in_a_head;

/// What the start of a connection's input holds.
#[derive(Debug)]
pub(crate) enum Parsed<'h, 'b> {
    /// A complete header block of this many bytes (up to and including the
    /// empty line). A later HTTP/1 minor version reads as HTTP/1.1:
    /// `version` is `Some(1)`.
    Complete(usize, httparse::Request<'h, 'b>),
    /// The header block goes on past the input.
    Partial,
    /// A request line of an HTTP version other than 1: `505`.
    OtherVersion,
    /// Not HTTP/1 (`400`, or `431` for too many fields).
    Invalid(httparse::Error),
}

/// Parses the header block at the start of `input` and gives `f` what it
/// found. A closure, not a return value: the fields live in storage on
/// this function's stack, and the versions `httparse` refuses need a
/// second parse with storage of their own.
#[inline]
pub(crate) fn with_head<'b, R>(input: &'b [u8], f: impl FnOnce(Parsed<'_, 'b>) -> R) -> R {
    let mut storage = [MaybeUninit::<Header<'b>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(input, &mut storage) {
        Ok(Status::Complete(len)) => f(Parsed::Complete(len, request)),
        Ok(Status::Partial) => f(Parsed::Partial),
        Err(httparse::Error::Version) => with_other_version(input, f),
        Err(e) => f(Parsed::Invalid(e)),
    }
}

/// The request line `httparse` refused for its version, read again by
/// hand: method, one space, target, one space, `HTTP/` digit `.` digit.
#[cold]
fn with_other_version<'b, R>(input: &'b [u8], f: impl FnOnce(Parsed<'_, 'b>) -> R) -> R {
    // The empty lines `httparse` skipped before the request line (until
    // 2026-12-05 they were taken for it: `\r\nGET / HTTP/1.2` got `400`).
    let skipped = empty_lines(input);
    let Some(line_end) = input[skipped..].iter().position(|&b| b == b'\n').map(|at| skipped + at) else {
        // A byte no line may hold is refused now, not at the line end: a
        // head trickled a control byte a read would otherwise be parsed
        // whole on every read (8,178 parses of 33 MB for 8 KiB).
        if input[skipped..].iter().any(|&b| never_in_a_head(b)) {
            return f(Parsed::Invalid(httparse::Error::Version));
        }
        return f(Parsed::Partial);
    };
    let line = &input[skipped..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(RequestLine { method, target, major, minor }) = request_line(line) else {
        return f(Parsed::Invalid(httparse::Error::Version));
    };
    if major != 1 {
        return f(Parsed::OtherVersion);
    }
    if minor <= 1 {
        // Versions httparse takes: it refused something else on the line.
        return f(Parsed::Invalid(httparse::Error::Version));
    }
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let fields = &input[line_end + 1..];
    match httparse::parse_headers(fields, &mut storage) {
        Ok(Status::Complete((len, headers))) => {
            let count = headers.len();
            let request = httparse::Request {
                method: Some(method),
                path: Some(target),
                version: Some(1),
                headers: &mut storage[..count],
            };
            f(Parsed::Complete(line_end + 1 + len, request))
        }
        Ok(Status::Partial) => f(Parsed::Partial),
        Err(e) => f(Parsed::Invalid(e)),
    }
}

/// Bytes of the empty lines (`\r\n` or `\n`) at the start of `input`,
/// which a server ignores before a request line (RFC 9112 §2.2), as
/// `httparse` does.
pub(crate) fn empty_lines(input: &[u8]) -> usize {
    let mut rest = input;
    while let [b'\r', b'\n', after @ ..] | [b'\n', after @ ..] = rest {
        rest = after;
    }
    input.len() - rest.len()
}

struct RequestLine<'b> {
    method: &'b str,
    target: &'b str,
    major: u8,
    minor: u8,
}

/// Splits a request line (without its line end); `None` unless it is
/// well-formed with a version of the form `HTTP/` digit `.` digit.
fn request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return None;
    }
    // A target may carry UTF-8 beside visible ASCII, as httparse takes it
    // for HTTP/1.0 and 1.1 (so that the minor version changes no answer);
    // one that is not UTF-8 is refused below.
    if !method.iter().all(|&b| is_tchar(b)) || !target.iter().all(|&b| b.is_ascii_graphic() || !b.is_ascii()) {
        return None;
    }
    let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = *version else { return None };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return None;
    }
    let method = std::str::from_utf8(method).ok()?;
    let target = std::str::from_utf8(target).ok()?;
    Some(RequestLine { method, target, major: major - b'0', minor: minor - b'0' })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &[u8]) -> String {
        with_head(input, |parsed| match parsed {
            Parsed::Complete(len, request) => format!(
                "{len} {} {} 1.{} fields {}",
                request.method.unwrap_or("-"),
                request.path.unwrap_or("-"),
                request.version.unwrap_or(9),
                request.headers.len()
            ),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn httparse_versions_parse_as_before() {
        assert_eq!(parsed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), "28 GET /a 1.1 fields 1");
        assert_eq!(parsed(b"GET /a HTTP/1.0\r\n\r\n"), "19 GET /a 1.0 fields 0");
        assert_eq!(parsed(b"GET /a HTTP/1.1\r\nHost: x\r\n"), "Partial");
    }

    #[test]
    fn a_later_http1_minor_version_is_served_as_http11() {
        assert_eq!(parsed(b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n"), "28 GET /a 1.1 fields 1");
        assert_eq!(parsed(b"HEAD / HTTP/1.9\r\n\r\n"), "19 HEAD / 1.1 fields 0");
        assert_eq!(parsed(b"GET /a HTTP/1.2\nHost: x\n\n"), "25 GET /a 1.1 fields 1", "bare line feeds");
        assert_eq!(parsed(b"GET /a HTTP/1.2\r\nHost: x\r\n"), "Partial");
        assert_eq!(parsed(b"GET /a HTTP/1.2"), "Partial", "no line end yet");
        assert_eq!(parsed(b"\r\n\nGET /a HTTP/1.2\r\nHost: x\r\n\r\n"), "31 GET /a 1.1 fields 1", "empty lines first");
        assert_eq!(parsed(b"\r\nGET /a HTTP/1.2"), "Partial", "empty lines, then no line end yet");
        assert!(parsed(b"GET /a HTTP/1.2\x16").starts_with("Invalid"), "a control byte, no line end yet");
        assert!(parsed(b"GET /a HTTP/1.2\r\nBad Field: x\r\n\r\n").starts_with("Invalid"));
        // UTF-8 in the target, as on 1.1 (until 2026-12-07 refused on 1.2 alone).
        let utf8 = "GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parsed(utf8.as_bytes()), "32 GET /caf\u{e9} 1.1 fields 1");
        assert_eq!(parsed(utf8.replace("1.1", "1.2").as_bytes()), "32 GET /caf\u{e9} 1.1 fields 1");
        assert!(parsed(b"GET /caf\xe9 HTTP/1.2\r\nHost: x\r\n\r\n").starts_with("Invalid"), "not UTF-8");
        assert!(parsed(b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("Invalid"), "not UTF-8");
    }

    #[test]
    fn another_major_version_is_told_apart() {
        assert_eq!(parsed(b"GET / HTTP/2.0\r\n\r\n"), "OtherVersion");
        assert_eq!(parsed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "OtherVersion", "the HTTP/2 preface");
        assert_eq!(parsed(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"), "OtherVersion");
        assert_eq!(parsed(b"GET / HTTP/0.9\r\n\r\n"), "OtherVersion");
        assert_eq!(parsed(b"\r\nPRI * HTTP/2.0\r\n\r\n"), "OtherVersion", "after an empty line");
    }

    #[test]
    fn malformed_request_lines_stay_invalid() {
        for line in [
            &b"GET / HTTP/2\r\n\r\n"[..],
            b"GET / HTTP/1.10\r\n\r\n",
            b"GET / http/1.2\r\n\r\n",
            b"GET  / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/1.2 \r\n\r\n",
            b"G(T / HTTP/1.2\r\n\r\n",
            b"GET /\x01 HTTP/1.2\r\n\r\n",
            b"GET / HTTP/x.2\r\n\r\n",
        ] {
            let result = parsed(line);
            assert!(result.starts_with("Invalid"), "{:?}: {result}", String::from_utf8_lossy(line));
        }
    }
}
