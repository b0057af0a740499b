//! A metrics client's request, judged by its first line: `GET` or `HEAD`
//! of `/metrics` (any query) over HTTP/1.0 or 1.1 gets the page; anything
//! else gets an error answer, written here; and the page's URL, as the
//! log gives it. Free of I/O.

use std::net::SocketAddr;

/// The path of the page.
pub const METRICS_PATH: &str = "/metrics";

/// The page's URL on the listener at `at`, to be copied from the log. An
/// IPv6 zone's `%` is written `%25` (RFC 6874), as `curl` takes it:
/// `http://[fe80::1%252]:9100/metrics` for zone 2, where the address alone
/// is written `[fe80::1%2]:9100` (until 2026-12-07 the URL was too).
pub fn page_url(at: SocketAddr) -> String {
    match at {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            format!("http://[{}%25{}]:{}{METRICS_PATH}", v6.ip(), v6.scope_id(), v6.port())
        }
        _ => format!("http://{at}{METRICS_PATH}"),
    }
}

/// Why a request gets an error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    TooLarge,
}

impl Refusal {
    pub(super) fn answer(self) -> Vec<u8> {
        let (status, extra, body) = match self {
            Refusal::BadRequest => ("400 Bad Request", "", "bad request\n"),
            Refusal::NotFound => ("404 Not Found", "", "not found: the metrics are at /metrics\n"),
            Refusal::MethodNotAllowed => ("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "GET or HEAD only\n"),
            Refusal::TooLarge => ("431 Request Header Fields Too Large", "", "request head too large\n"),
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Reads a request head (without its blank line): `Ok(head)` for the page
/// (`head` for `HEAD`), or why not.
pub(super) fn judge(head: &[u8]) -> Result<bool, Refusal> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| Refusal::BadRequest)?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let path = target.split('?').next().unwrap_or(target);
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ if method.bytes().all(|b| b.is_ascii_uppercase()) && !method.is_empty() => {
            return Err(Refusal::MethodNotAllowed)
        }
        _ => return Err(Refusal::BadRequest),
    };
    if path != METRICS_PATH {
        return Err(Refusal::NotFound);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_url_writes_an_ipv6_zone_percent_encoded() {
        let cases = [
            ("127.0.0.1:9100", "http://127.0.0.1:9100/metrics"),
            ("[::1]:9100", "http://[::1]:9100/metrics"),
            // RFC 6874: in a URI, the `%` before a zone is written `%25`.
            ("[fe80::1%2]:9100", "http://[fe80::1%252]:9100/metrics"),
        ];
        for (at, url) in cases {
            let at: SocketAddr = at.parse().expect("an address");
            assert_eq!(page_url(at), url, "{at}");
        }
    }

    #[test]
    fn requests_are_judged_by_their_first_line() {
        let cases: [(&[u8], Result<bool, Refusal>); 9] = [
            (b"GET /metrics HTTP/1.1\r\nHost: a", Ok(false)),
            (b"HEAD /metrics HTTP/1.0", Ok(true)),
            (b"GET /metrics?x=1 HTTP/1.1", Ok(false)),
            (b"GET / HTTP/1.1", Err(Refusal::NotFound)),
            (b"GET /metricsx HTTP/1.1", Err(Refusal::NotFound)),
            (b"POST /metrics HTTP/1.1", Err(Refusal::MethodNotAllowed)),
            (b"GET /metrics HTTP/2", Err(Refusal::BadRequest)),
            (b"GET  /metrics HTTP/1.1", Err(Refusal::BadRequest)),
            (b"\xff /metrics HTTP/1.1", Err(Refusal::BadRequest)),
        ];
        for (head, expected) in cases {
            assert_eq!(judge(head), expected, "{}", String::from_utf8_lossy(head));
        }
    }
}
