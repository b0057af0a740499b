//! The header fields that matter to framing and replies, read one by one
//! (`Host`, `Expect`, `Connection`, `Content-Length`, `Transfer-Encoding`).

use crate::http::target::is_host_field_value;

/// What the header fields say, gathered before deciding (so that, say, a
/// `Content-Length` after a `Transfer-Encoding` is still seen).
#[derive(Default)]
pub(super) struct Fields {
    pub(super) content_length: Option<u64>,
    /// More than one `Content-Length` field line.
    pub(super) repeated_length: bool,
    pub(super) transfer_encodings: u8,
    /// The last transfer coding listed is `chunked`.
    pub(super) chunked_last: bool,
    /// Codings are listed before the last one.
    pub(super) codings_before_last: bool,
    /// `chunked` is listed before the last coding: applied twice, or not last.
    pub(super) chunked_before_last: bool,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) expect_other: bool,
    pub(super) hosts: u8,
    pub(super) bad_host: bool,
}

/// Records one header field; false when its value is malformed. The name's
/// length picks the one name it can be, so most fields cost one compare.
pub(super) fn read_field(fields: &mut Fields, name: &[u8], value: &[u8]) -> bool {
    match name.len() {
        4 if name.eq_ignore_ascii_case(b"host") => {
            fields.hosts = fields.hosts.saturating_add(1);
            fields.bad_host |= !is_host_field_value(trim(value));
        }
        6 if name.eq_ignore_ascii_case(b"expect") => {
            // A list whose empty elements a recipient ignores (RFC 9110
            // §5.6.1), so an empty `Expect` asks nothing; `417` is for a
            // member other than `100-continue` (§10.1.1). Until 2026-12-07
            // the whole value was one member: `Expect:` and
            // `100-continue,` got `417`.
            for member in value.split(|&b| b == b',').map(trim).filter(|member| !member.is_empty()) {
                if member.eq_ignore_ascii_case(b"100-continue") {
                    fields.expect_continue = true;
                } else {
                    fields.expect_other = true;
                }
            }
        }
        10 if name.eq_ignore_ascii_case(b"connection") => {
            for token in value.split(|&b| b == b',').map(trim) {
                fields.close |= token.eq_ignore_ascii_case(b"close");
                fields.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        14 if name.eq_ignore_ascii_case(b"content-length") => {
            let Some(length) = parse_decimal(trim(value)) else { return false };
            // Two field lines are one list (RFC 9110 §5.3), and a list
            // (`3, 3`) does not parse as a length: refused alike, even when
            // the values agree, which §8.6 allows and nginx does. Until
            // 2026-12-07 two lines of one value were served, the list not.
            fields.repeated_length |= fields.content_length.is_some();
            fields.content_length = Some(length);
        }
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
            fields.transfer_encodings = fields.transfer_encodings.saturating_add(1);
            // A list may carry empty elements, which a recipient ignores
            // (RFC 9110 §5.6.1): `chunked ,` is `chunked`.
            let is_chunked = |coding: &[u8]| coding.eq_ignore_ascii_case(b"chunked");
            let mut codings = value.split(|&b| b == b',').map(trim).filter(|token| !token.is_empty());
            let mut last = codings.next();
            fields.codings_before_last = false;
            fields.chunked_before_last = false;
            for coding in codings {
                fields.codings_before_last = true;
                fields.chunked_before_last |= last.is_some_and(is_chunked);
                last = Some(coding);
            }
            fields.chunked_last = last.is_some_and(is_chunked);
        }
        _ => {}
    }
    true
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
