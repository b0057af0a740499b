//! Request targets and header fields at the edges of RFC 9110/9112, where
//! ringmaster and nginx were compared byte for byte (2026-12-07): what is
//! refused, and what is served as it was.

use crate::http_errors::{expect_error, server};
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

/// A `Host` value, and an absolute-form target's authority, is a host and
/// perhaps a port (RFC 3986 §3.2.2): anything else is `400` (RFC 9112
/// §3.2: MUST for `Host`), and so is userinfo in an `http` URI (RFC 9110
/// §4.2.4), as nginx answers the absolute-form ones. Until 2026-12-07 only
/// their bytes were checked, and each of these got `200`.
#[test]
fn e400_host_or_authority_that_is_not_a_host_and_port() {
    let s = server();
    for host in ["a:b", "a:1:2", "[::1", "a]", "[::1]x", "::1"] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        expect_error(&s, req.as_bytes(), &[400]);
    }
    for target in ["http://user@a/", "http://a:b/", "http://[::1/", "http://a:1:2/"] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        expect_error(&s, req.as_bytes(), &[400]);
    }
    let mut c = s.connect();
    for req in [
        &b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET http://a:80/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://[::1]:80/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let r = c.request(req);
        check_ok(&r);
        assert!(!r.has_connection("close"), "{r:?}");
    }
}

/// Two `Content-Length` field lines are one list (RFC 9110 §5.3), as
/// `5, 5` is: both are refused, even when the values agree (§8.6 allows
/// it; nginx does). Until 2026-12-07 two lines of one value were served
/// `200` and the list refused.
#[test]
fn e400_content_length_repeated_even_with_one_value() {
    let s = server();
    for lengths in
        ["Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5, 5", "content-length: 5\r\nContent-Length:5"]
    {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\n{lengths}\r\n\r\nhello");
        expect_error(&s, req.as_bytes(), &[400]);
    }
}

/// `Expect` is a list whose empty elements are ignored (RFC 9110 §5.6.1,
/// §10.1.1): an empty one asks nothing, and `100-continue,` is
/// `100-continue`. Until 2026-12-07 both got `417` and a close.
#[test]
fn an_expect_list_with_empty_members_is_read_as_its_members() {
    let s = server();
    let mut c = s.connect();
    let r = c.request(b"GET / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n");
    check_ok(&r);
    assert!(!r.has_connection("close"), "{r:?}");
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue,\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 100, "expected 100 Continue first, got {r:?}");
    c.send(b"hello");
    check_ok(&c.read());
    c.get_ok();
}
