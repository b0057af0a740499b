//! How a request's body is framed (RFC 9112 §6.3): none, a length, or
//! chunked; or the reply that refuses what the fields say.

use super::fields::Fields;
use crate::http::limits::Limits;
use crate::http::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// How the body is framed (RFC 9112 §6.3), or the reply that refuses it.
pub(super) fn decide_framing(fields: &Fields, http11: bool, limits: &Limits) -> Result<Framing, Reply> {
    // A 1.1 request must name exactly one host, and no request may name
    // more than one or an invalid one (RFC 9112 §3.2).
    if (http11 && fields.hosts != 1) || fields.hosts > 1 || fields.bad_host {
        return Err(Reply::BadRequest);
    }
    if fields.repeated_length {
        return Err(Reply::BadRequest);
    }
    if fields.transfer_encodings > 0 {
        // Both framings at once is the request-smuggling shape: refuse it.
        // So is a last coding other than `chunked` (`gzip`, `chunked,
        // gzip`, none): the body's end cannot be found, a `400` by RFC
        // 9112 §6.3 (until 2026-12-07 it got `501`, which §6.1 keeps for
        // a coding this server does not implement before a final `chunked`).
        // And `chunked` applied twice (`chunked, chunked`), which a sender
        // MUST NOT do (§6.1): malformed, not unimplemented (until
        // 2026-12-07 it got `501`).
        if fields.content_length.is_some()
            || !http11
            || fields.transfer_encodings > 1
            || !fields.chunked_last
            || fields.chunked_before_last
        {
            return Err(Reply::BadRequest);
        }
        if fields.codings_before_last {
            return Err(Reply::NotImplemented);
        }
    }
    if fields.expect_other {
        return Err(Reply::ExpectationFailed);
    }
    if fields.transfer_encodings > 0 {
        return Ok(Framing::Chunked);
    }
    match fields.content_length {
        Some(length) if length > limits.max_body => Err(Reply::ContentTooLarge),
        Some(0) | None => Ok(Framing::None),
        Some(length) => Ok(Framing::Length(length)),
    }
}
