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
/// be an IPv6 literal in brackets. No path, query or userinfo.
fn is_authority_form(target: &[u8]) -> bool {
    matches!(host_and_port(target), Some((host, Some(port))) if !host.is_empty() && !port.is_empty())
}

/// `scheme "://" authority` at the start: a scheme of a letter, then
/// letters, digits, `+`, `-` or `.` (RFC 3986 §3.1), and an authority of a
/// host and perhaps a port (`a:b`, `[::1`, `a:1:2` are none: nginx refuses
/// them too). An `http` or `https` URI must name a host: RFC 9110 §4.2.1
/// says a recipient MUST reject one whose host is empty (`http:///a`,
/// `http://:80/a`), as nginx does; nor may it carry userinfo
/// (`http://user@a/`), which §4.2.4 says a recipient SHOULD treat as an
/// error (it hides the authority from a reader), as nginx does. Until
/// 2026-12-07 the authority was not read, only its host's emptiness.
fn is_absolute_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else { return false };
    let (scheme, rest) = target.split_at(colon);
    let is_scheme_byte = |b: &u8| b.is_ascii_alphanumeric() || b"+-.".contains(b);
    let Some(after_slashes) = rest.strip_prefix(b"://") else { return false };
    if !scheme.first().is_some_and(u8::is_ascii_alphabetic) || !scheme.iter().all(is_scheme_byte) {
        return false;
    }
    let end = after_slashes.iter().position(|b| b"/?".contains(b)).unwrap_or(after_slashes.len());
    let authority = &after_slashes[..end];
    let (userinfo, host_and_port_bytes) = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let Some((host, _)) = host_and_port(host_and_port_bytes) else { return false };
    if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https") {
        return !host.is_empty() && userinfo.is_none();
    }
    userinfo.is_none_or(|userinfo| userinfo.iter().all(|&b| is_reg_name_byte(b) || b == b':'))
}

/// A `Host` field's value, its whitespace trimmed (RFC 9112 §3.2: a server
/// MUST answer `400` to one that is invalid): empty (a target URI without
/// an authority, RFC 9110 §7.2), or a host and perhaps a port, as
/// [`host_and_port`] reads them. Until 2026-12-07 only its bytes were
/// checked, so `a:b`, `a:1:2`, `[::1`, `a]` and `::1` were served.
pub(crate) fn is_host_field_value(value: &[u8]) -> bool {
    value.is_empty() || host_and_port(value).is_some_and(|(host, _)| !host.is_empty())
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3): an IP literal in
/// brackets or a reg-name (an IPv4 address is one), then perhaps a colon
/// and digits. The host (empty for an empty reg-name) and the port (`None`
/// without a colon); `None` when `authority` is neither.
fn host_and_port(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let host_end = match authority.first() {
        Some(b'[') => {
            // IPv6 or IPvFuture: their bytes, never a bracket, within.
            let close = authority.iter().position(|&b| b == b']')?;
            let literal = &authority[1..close];
            if literal.is_empty() || !literal.iter().all(|&b| is_reg_name_byte(b) || b == b':') {
                return None;
            }
            close + 1
        }
        _ => {
            let end = authority.iter().position(|&b| b == b':').unwrap_or(authority.len());
            if !authority[..end].iter().all(|&b| is_reg_name_byte(b)) {
                return None;
            }
            end
        }
    };
    let (host, rest) = authority.split_at(host_end);
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some((host, Some(port))),
        _ => None,
    }
}

/// A byte of a reg-name (RFC 3986 §3.2.2): unreserved, sub-delims, or the
/// `%` of a pct-encoded byte. Whitespace, `/`, `?`, `#`, `@`, `:`,
/// brackets, quotes and the like are not.
fn is_reg_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&byte)
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
