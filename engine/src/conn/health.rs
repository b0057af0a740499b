//! The health path (`--health-path`): which requests are its probes.

use crate::http::Reply;

/// True when `head` (a complete header block) is a `GET` or a `HEAD` of
/// the health path answered by `reply` (a success). A
/// `HEAD` gets the same status as a `GET` (RFC 9110 §9.3.2), without the
/// content: probes are often `HEAD`s (HAProxy's `option httpchk HEAD`).
/// Until 2026-12-05 a `HEAD` was not one, and got the plain `200` even from
/// a draining worker or a lame duck, so such a probe never saw it go.
///
/// The target names the path as a handler's route sees it: its path
/// (`Request::path()`, an absolute-form's without its scheme and authority:
/// `http://host/healthz`, which RFC 9112 §3.2.2 says a server MUST accept)
/// and its query (none, unless the health path has one) are the health
/// path's. Until 2026-12-05 only the origin-form did: an absolute-form
/// probe got the handler's answer, `200` from a lame duck as well.
///
/// A probe with a body (`Content-Length`, or `chunked` even when empty) is
/// one too, answered once its body is read. Until 2026-12-06 it was the
/// handler's, `200` from a lame duck as well.
pub(super) fn is_health_check(reply: Reply, head: &[u8], health_path: Option<&[u8]>) -> bool {
    let Some(health_path) = health_path else { return false };
    let after_method = match reply {
        Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => head.strip_prefix(b"GET "),
        Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose => head.strip_prefix(b"HEAD "),
        _ => None,
    };
    let Some(after_method) = after_method else { return false };
    let target = after_method.split(|&b| b == b' ').next().unwrap_or_default();
    // UTF-8 whenever the parser took the head (it refuses a target that is not).
    let Ok(target) = std::str::from_utf8(target) else { return false };
    let (path, query) = match health_path.iter().position(|&b| b == b'?') {
        Some(at) => (&health_path[..at], Some(&health_path[at + 1..])),
        None => (health_path, None),
    };
    let target_query = crate::http::query_of(target).map(str::as_bytes);
    crate::http::path_of(target).as_bytes() == path && target_query == query
}
