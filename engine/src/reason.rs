//! The reason phrase a handler's answer carries in its status line: IANA's
//! HTTP status code registry (RFC 9110 §15 and the RFCs that added codes
//! since), so that a client or a log that shows the phrase shows the
//! code's own. Until 2026-12-07 only 27 codes had one, and a handler's
//! `205`, `412` or `451` went as `HTTP/1.1 412 \r\n` (allowed, RFC 9112
//! §4, but a reader saw no phrase).

/// The reason phrase of `code`, or an empty one (which HTTP allows) for a
/// code the registry does not name (`299`, `418`: unused).
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// The longest phrase [`reason`] gives: the framing's room is kept for it.
pub(crate) const LONGEST: usize = 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_phrase_is_counted_and_every_phrase_is_a_reason_phrase() {
        let longest = (200..=599).map(|code| reason(code).len()).max();
        assert_eq!(longest, Some(LONGEST));
        for code in 200..=599u16 {
            // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
            assert!(reason(code).bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{code}");
        }
        assert_eq!((reason(205), reason(412), reason(299)), ("Reset Content", "Precondition Failed", ""));
    }
}
