//! A header block judged: refused with its reply, still incomplete, or a
//! request with its framing, its reply and whether it expects `100 Continue`.

use super::fields::{read_field, Fields};
use super::framing::{decide_framing, Framing};
use crate::http::head::{with_head, Parsed};
use crate::http::limits::Limits;
use crate::http::target::fits_method;
use crate::http::Reply;

pub(super) enum HeadResult {
    NeedMore,
    /// A request that is refused; the connection closes after the reply.
    Reject(Reply),
    Request {
        len: usize,
        framing: Framing,
        reply: Reply,
        expect_continue: bool,
    },
}

/// Parses a header block; `head` becomes whether it is a `HEAD`'s, once it
/// is decided (not while it is incomplete).
pub(super) fn parse_head(input: &[u8], limits: &Limits, head: &mut bool) -> HeadResult {
    let result = with_head(input, |parsed| {
        if let Parsed::Complete(_, request) = &parsed {
            *head = request.method == Some("HEAD");
        }
        decide_head(input, limits, parsed)
    });
    if matches!(result, HeadResult::Reject(_)) {
        // Refused, perhaps before it was complete (over --max-header) or
        // parsed: its request line says whether its client reads content.
        // Until 2026-12-05 a refusal of an incomplete head kept the flag of
        // the request before it: a `HEAD`'s left a `GET`'s `414` without
        // the content its `Content-Length` promised.
        *head = begins_with_head_method(input);
    }
    result
}

/// The request line (where the head starts: the empty lines before it are
/// skipped) starts with the method `HEAD`.
pub(super) fn begins_with_head_method(input: &[u8]) -> bool {
    input.starts_with(b"HEAD ")
}

pub(super) fn decide_head(input: &[u8], limits: &Limits, parsed: Parsed<'_, '_>) -> HeadResult {
    match parsed {
        Parsed::Complete(len, _) if len > limits.max_header => HeadResult::Reject(too_large(input, limits)),
        // `*` for OPTIONS only, authority-form for CONNECT only (RFC 9112
        // §3.2.3, §3.2.4), and no target of none of the forms: malformed,
        // whatever the method.
        Parsed::Complete(_, request) if !fits_method(request.method.unwrap_or(""), request.path.unwrap_or("")) => {
            HeadResult::Reject(Reply::BadRequest)
        }
        // A proxy's method: a 2xx would tell the client its tunnel is open
        // (RFC 9110 §9.3.6), so an origin server says it does not do it.
        Parsed::Complete(_, request) if request.method == Some("CONNECT") => HeadResult::Reject(Reply::NotImplemented),
        Parsed::Complete(len, request) => {
            decide(len, request.method == Some("HEAD"), request.version == Some(1), request.headers, limits)
        }
        Parsed::Partial if input.len() >= limits.max_header => HeadResult::Reject(too_large(input, limits)),
        Parsed::Partial => HeadResult::NeedMore,
        Parsed::OtherVersion => HeadResult::Reject(Reply::VersionNotSupported),
        Parsed::Invalid(httparse::Error::TooManyHeaders) => HeadResult::Reject(Reply::HeaderTooLarge),
        Parsed::Invalid(_) => HeadResult::Reject(Reply::BadRequest),
    }
}

/// The refusal of a head over `--max-header`: `414` when the request line
/// alone does not end within it (as nginx answers a long URI), else `431`.
fn too_large(input: &[u8], limits: &Limits) -> Reply {
    let within = &input[..input.len().min(limits.max_header)];
    if within.contains(&b'\n') {
        Reply::HeaderTooLarge
    } else {
        Reply::UriTooLong
    }
}

/// What a complete header block asks for: its framing and its reply.
fn decide(len: usize, head: bool, http11: bool, headers: &[httparse::Header<'_>], limits: &Limits) -> HeadResult {
    let mut fields = Fields::default();
    for header in headers {
        if !read_field(&mut fields, header.name.as_bytes(), header.value) {
            return HeadResult::Reject(Reply::BadRequest);
        }
    }
    let framing = match decide_framing(&fields, http11, limits) {
        Ok(framing) => framing,
        Err(reply) => return HeadResult::Reject(reply),
    };
    let keep_alive = if http11 { !fields.close } else { fields.keep_alive && !fields.close };
    let reply = match (head, keep_alive, http11) {
        (false, false, _) => Reply::OkClose,
        (false, true, true) => Reply::Ok,
        (false, true, false) => Reply::OkKeepAlive,
        (true, false, _) => Reply::HeadClose,
        (true, true, true) => Reply::Head,
        (true, true, false) => Reply::HeadKeepAlive,
    };
    // An HTTP/1.0 client knows no 1xx answers: its 100-continue is ignored
    // (RFC 9110 §10.1.1, §15.2).
    HeadResult::Request { len, framing, reply, expect_continue: fields.expect_continue && http11 }
}
