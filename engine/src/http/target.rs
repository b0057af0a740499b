//! Which request-target forms (RFC 9112 §3.2) a request's method may use.

/// True when `target` is a form `method` may use: origin-form (`/path`) and
/// absolute-form (`scheme://authority...`) for any method, asterisk-form
/// (`*`) for `OPTIONS` only (§3.2.4). Anything else is authority-form
/// (`host:port`), which only `CONNECT` uses (§3.2.3) and which is refused
/// before this (`501`), or no form at all. An absolute-form needs its `//`:
/// without it `host:port` would read as a scheme and a path, and an origin
/// server has no use for a URI without an authority.
pub(crate) fn fits_method(method: &str, target: &str) -> bool {
    match target.as_bytes() {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        bytes => is_absolute_form(bytes),
    }
}

/// `scheme "://"` at the start: a letter, then letters, digits, `+`, `-`
/// or `.` (RFC 3986 §3.1).
fn is_absolute_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else { return false };
    let (scheme, rest) = target.split_at(colon);
    let is_scheme_byte = |b: &u8| b.is_ascii_alphanumeric() || b"+-.".contains(b);
    scheme.first().is_some_and(u8::is_ascii_alphabetic) && scheme.iter().all(is_scheme_byte) && rest.starts_with(b"://")
}
