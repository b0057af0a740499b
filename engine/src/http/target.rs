//! Which request-target forms (RFC 9112 §3.2) a request's method may use,
//! and the path and authority a target names.

/// True when `target` is a form `method` may use: `CONNECT` authority-form
/// (`host:port`) and nothing else (§3.2.3); any other method origin-form
/// (`/path`) and absolute-form (`scheme://authority...`), and asterisk-form
/// (`*`) for `OPTIONS` only (§3.2.4). An absolute-form needs its `//`:
/// without it `host:port` would read as a scheme and a path, and an origin
/// server has no use for a URI without an authority.
///
/// No form carries a fragment (§3.2: a `#` makes the request line invalid,
/// which a server SHOULD answer with `400`, §3), as nginx refuses
/// `http://a#/admin` and Envoy any `#`: a proxy in front that reads what
/// follows it as path would route such a request by a path this server
/// never sees. Until 2026-12-07 the fragment was cut off and the rest served.
pub(crate) fn fits_method(method: &str, target: &str) -> bool {
    if target.contains('#') {
        return false;
    }
    if method == "CONNECT" {
        return is_authority_form(target.as_bytes());
    }
    match target.as_bytes() {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        bytes => is_absolute_form(bytes),
    }
}

/// `host ":" port` with a host and a port of digits (§3.2.3); the host may
/// be an IPv6 literal in brackets, so the port follows the last colon. No
/// path, query, fragment or userinfo.
fn is_authority_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().rposition(|&b| b == b':') else { return false };
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    !host.is_empty()
        && !host.iter().any(|b| b"/?#@".contains(b))
        && !port.is_empty()
        && port.iter().all(u8::is_ascii_digit)
}

/// `scheme "://"` at the start: a letter, then letters, digits, `+`, `-`
/// or `.` (RFC 3986 §3.1). An `http` or `https` URI must name a host: RFC
/// 9110 §4.2.1 says a recipient MUST reject one whose host is empty
/// (`http:///a`, `http://:80/a`, `http://user@/a`), as nginx does.
fn is_absolute_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else { return false };
    let (scheme, rest) = target.split_at(colon);
    let is_scheme_byte = |b: &u8| b.is_ascii_alphanumeric() || b"+-.".contains(b);
    let Some(after_slashes) = rest.strip_prefix(b"://") else { return false };
    let is_http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(is_scheme_byte)
        && !(is_http && host_is_empty(after_slashes))
}

/// Whether the authority at the start of `rest` (what follows `://`) has
/// an empty host: nothing, or only userinfo and a port, before its end.
fn host_is_empty(rest: &[u8]) -> bool {
    let end = rest.iter().position(|b| b"/?#".contains(b)).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_and_port = authority.iter().rposition(|&b| b == b'@').map_or(authority, |at| &authority[at + 1..]);
    matches!(host_and_port.first(), None | Some(b':'))
}

/// `target` without a fragment (`#` and what follows): no request-target
/// form has one (RFC 9112 §3.2) and [`fits_method`] refuses a target with
/// one, so this only keeps the path and the query right should a target
/// that was not parsed here reach them. Until 2026-12-07 it was read as
/// path: `http://a#/admin` had the path `/admin` (the health path matched
/// so), and `/a#b` the path `/a#b`.
fn without_fragment(target: &str) -> &str {
    target.split_once('#').map_or(target, |(before, _)| before)
}

/// The query `target` names: after its `?`, up to a fragment; `None` without one.
pub(crate) fn query_of(target: &str) -> Option<&str> {
    without_fragment(target).split_once('?').map(|(_, query)| query)
}

/// The path `target` names: the target up to `?` (or a fragment), without
/// the scheme and authority of an absolute-form (`/a` for
/// `http://host/a?b`; `/` when it has no path), so that a route
/// (`Request::path()`) and the health path match whichever form the client
/// sent.
pub(crate) fn path_of(target: &str) -> &str {
    let target = without_fragment(target);
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path.starts_with('/') {
        return path;
    }
    // The parser lets only an absolute-form (`scheme://...`) or `*` through.
    match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => path,
    }
}

/// The authority of an absolute-form `target` (`host:8080` for
/// `http://user@host:8080/a?b`, without the userinfo: the host is what
/// follows its `@`); `None` for any other form.
pub(crate) fn authority_of(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return None;
    }
    let (_, rest) = target.split_once("://")?;
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    Some(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
}
