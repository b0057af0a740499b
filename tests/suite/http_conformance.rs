//! Request targets and header fields at the edges of RFC 9110/9112, where
//! ringmaster and nginx were compared byte for byte (2026-12-07): what is
//! refused, and what is served as it was.

use crate::http_errors::expect_error;
use crate::util::*;

/// No request-target form carries a fragment (RFC 9112 §3.2): a `#` makes
/// the request line invalid, `400` (§3), as nginx answers `http://a#/admin`.
/// Until 2026-12-07 the fragment was cut off and the rest served `200`.
#[test]
fn e400_target_with_a_fragment() {
    let s = Server::start(&["--workers", "1", "--health-path", "/healthz"]);
    for req in [
        &b"GET http://a#/admin HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET http://a#/healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /healthz#x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a?c=1#f HTTP/1.0\r\n\r\n",
    ] {
        expect_error(&s, req, &[400]);
    }
    let mut c = s.connect();
    let r = c.request(b"GET /a?c=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    check_ok(&r);
    assert!(!r.has_connection("close"), "{r:?}");
}
