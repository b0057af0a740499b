//! Bad input gets a clear error answer, `Connection: close`, then a close; and
//! the worker lives on to serve the next connection.

use crate::util;

use std::io::{Read, Write};
use std::time::Duration;
use util::*;

/// Server with small limits so the limit tests are cheap.
pub(crate) fn server() -> Server {
    Server::start(&["--workers", "1", "--max-body", "1000", "--max-header", "1024"])
}

/// Sends `req` on a fresh connection; expects one error answer whose status is in
/// `codes`, then a close; then checks a new connection is still served.
pub(crate) fn expect_error(s: &Server, req: &[u8], codes: &[u16]) -> Response {
    let mut c = s.connect();
    // The server may answer and close before all of a long request is written.
    let _ = c.try_send(req);
    let r = c.try_read().unwrap_or_else(|e| {
        panic!("request {:?}: expected {codes:?}, reading failed: {e}", String::from_utf8_lossy(req))
    });
    assert!(codes.contains(&r.status), "request {:?}: expected {codes:?}, got {r:?}", String::from_utf8_lossy(req));
    check_error(&r, r.status);
    c.expect_closed();
    // The worker did not die.
    let mut c2 = s.connect();
    c2.get_ok();
    r
}

#[test]
fn e413_content_length_over_max_body() {
    let s = server();
    // No body sent: the answer must not wait for it.
    let r = expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", &[413]);
    assert_eq!(r.status, 413);
    expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n", &[413]);
}

#[test]
fn e413_content_length_with_body_sent() {
    let s = server();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 5000));
    expect_error(&s, &req, &[413]);
}

#[test]
fn e413_or_400_content_length_overflowing() {
    let s = server();
    expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", &[400, 413]);
}

#[test]
fn e413_chunked_over_max_body() {
    let s = server();
    // Each chunk is under the limit, their sum (1500) is over it.
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(&[b'c'; 1500], 500));
    expect_error(&s, &req, &[413]);
}

#[test]
fn e413_chunked_single_chunk_over_max_body() {
    let s = server();
    // One chunk of 2000 bytes.
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n".to_vec();
    req.extend_from_slice(&[b'd'; 2000]);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    expect_error(&s, &req, &[413]);
}

#[test]
fn e413_with_expect_100_continue_gets_no_100() {
    let s = server();
    let r =
        expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n", &[413]);
    assert_eq!(r.status, 413);
}

#[test]
fn e400_malformed_request_line() {
    let s = server();
    for req in [
        &b"NOT A REQUEST\r\n\r\n"[..],
        b"GET\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
        b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        expect_error(&s, req, &[400]);
    }
}

/// RFC 9110 §15.6.6: a request line of a major version other than 1
/// (HTTP/2's connection preface among them) is `505`, not `400`.
#[test]
fn e505_another_major_http_version() {
    let s = server();
    for req in [
        &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
    ] {
        expect_error(&s, req, &[505]);
    }
    // Not a version at all is still malformed.
    expect_error(&s, b"GET / HTTP/2\r\nHost: a\r\n\r\n", &[400]);
}

/// RFC 9110 §2.5: a later HTTP/1 minor version is served as HTTP/1.1 (kept
/// alive, `Host` required).
#[test]
fn a_later_http1_minor_version_is_served_as_http11() {
    let s = server();
    let mut c = s.connect();
    for i in 0..2 {
        let r = c.try_send(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").and_then(|()| c.try_read());
        let r = r.unwrap_or_else(|e| panic!("request {i} as HTTP/1.2: {e}"));
        check_ok(&r);
        assert!(!r.has_connection("close"), "an HTTP/1.2 request is kept alive as 1.1's are: {r:?}");
    }
    expect_error(&s, b"GET / HTTP/1.2\r\n\r\n", &[400]);
}

/// The empty lines a server ignores before a request line (RFC 9112 §2.2,
/// as after a body some clients end with a line end) are ignored before
/// one of a version `httparse` does not know too: in the same read as the
/// request after it, an `HTTP/1.2` request is served and an `HTTP/2.0` one
/// gets `505`. Until 2026-12-05 the empty line was read as the request
/// line: both got `400`.
#[test]
fn empty_lines_before_a_request_of_another_version_are_ignored() {
    let s = server();
    let mut c = s.connect();
    let two = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET / HTTP/1.2\r\nHost: a\r\n\r\n";
    c.send(two);
    for i in 0..2 {
        let r = c.try_read().unwrap_or_else(|e| panic!("answer {i}: {e}"));
        check_ok(&r);
    }
    c.send(b"\r\n\nGET / HTTP/1.2\r\nHost: a\r\n\r\n");
    check_ok(&c.try_read().unwrap_or_else(|e| panic!("after empty lines: {e}")));
    expect_error(&s, b"\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[505]);
}

#[test]
fn e400_malformed_headers() {
    let s = server();
    for req in [
        &b"GET / HTTP/1.1\r\nHost a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n",
    ] {
        expect_error(&s, req, &[400]);
    }
}

/// A head sent one byte per write gets the answers it gets sent whole, and
/// as soon as it is decided: at `--max-header` for length, at the end of a
/// malformed line, at once for a byte no line may hold (a TLS hello).
#[test]
fn a_head_sent_a_byte_a_write_is_answered_as_one_sent_whole() {
    let s = server();
    let mut c = s.connect();
    let fill = format!("X-Fill: {}\r\n", "v".repeat(900));
    c.send_bytewise(format!("GET / HTTP/1.1\r\nHost: a\r\n{fill}\r\n").as_bytes(), Duration::ZERO);
    check_ok(&c.read());
    for (head, status) in [
        (format!("GET /{}", "u".repeat(1019)), 414),
        (format!("GET / HTTP/1.1\r\nHost: a\r\nX-Fill: {}", "v".repeat(1024 - 33)), 431),
        ("GET / HTTP/1.1\r\nBad Field: v\r\n".to_string(), 400),
        ("\x16\x03\x01".to_string(), 400),
    ] {
        // Exactly the bytes that decide it: no answer would come without them.
        assert!(head.len() <= 1024, "{head:?}");
        let mut c = s.connect();
        c.send_bytewise(head.as_bytes(), Duration::ZERO);
        let r = c.try_read().unwrap_or_else(|e| panic!("{head:?}: expected {status}, reading failed: {e}"));
        assert_eq!(r.status, status, "{head:?}");
        check_error(&r, status);
    }
    s.connect().get_ok();
}

/// A head over `--max-header` gets the same answer sent in one write as
/// sent in 50-byte writes the worker reads one at a time: its first
/// `--max-header` bytes decide it, whatever the read that reached the limit
/// brought past it. Until 2026-12-05 a bad line after the limit got `400`
/// sent whole (parsed with the rest of the read) and `431` in pieces.
#[test]
fn a_head_over_max_header_gets_one_answer_however_it_is_cut() {
    let s = server();
    // The fill line ends at byte 1060: the bad line comes after the limit
    // (1024) and after the 50-byte write that crosses it.
    let fill = format!("X-Fill: {}\r\n", "v".repeat(1025));
    for (head, status) in [
        (format!("GET / HTTP/1.1\r\nHost: a\r\n{fill}Bad Field: x\r\n\r\n"), 431),
        (format!("GET / HTTP/1.1\r\nHost: a\r\nBad Field: x\r\n{fill}\r\n"), 400),
    ] {
        let head = head.as_bytes();
        for piece in [head.len(), 50] {
            let mut c = s.connect();
            send_read_by_read(&s, &mut c, head, piece);
            let shown = String::from_utf8_lossy(head);
            let r = c.try_read().unwrap_or_else(|e| panic!("{piece}-byte writes of {shown:?}: reading failed: {e}"));
            assert_eq!(r.status, status, "{piece}-byte writes of {shown:?}");
            check_error(&r, status);
            c.expect_closed();
        }
    }
    s.connect().get_ok();
}

/// Writes `bytes` in pieces of `piece` bytes, each a read of its own
/// ([`Conn::send_reads`]).
fn send_read_by_read(s: &Server, c: &mut Conn, bytes: &[u8], piece: usize) {
    c.send_reads(s.addr(), bytes.chunks(piece));
}

/// Empty lines before a request line count toward no `--max-header`,
/// wherever they arrive: a head of the limit after one is served in the
/// read that brings it and after a read of its own, one a byte longer is
/// refused in both. Until 2026-12-06 the empty line counted only in the
/// head's read: `431` there, `200` after a read of its own.
#[test]
fn empty_lines_before_a_head_count_toward_no_limit_wherever_they_arrive() {
    let s = server();
    let head = |len: usize| {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: ".to_vec();
        head.resize(len - 4, b'v');
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    for (len, status) in [(1024, 200), (1025, 431)] {
        let head = head(len);
        for lead in [&b"\r\n"[..], b"\n\r\n"] {
            let together = [lead, &head].concat();
            for reads in [vec![&together[..]], vec![lead, &head]] {
                let mut c = s.connect();
                c.send_reads(s.addr(), reads.iter().copied());
                let shown = format!("{len}-byte head after {:?}, {} reads", String::from_utf8_lossy(lead), reads.len());
                let r = c.try_read().unwrap_or_else(|e| panic!("{shown}: reading failed: {e}"));
                assert_eq!(r.status, status, "{shown}");
                if status == 200 {
                    check_ok(&r);
                    c.get_ok();
                } else {
                    check_error(&r, status);
                    c.expect_closed();
                }
            }
        }
    }
}

#[test]
fn e400_garbage_bytes() {
    let s = server();
    expect_error(&s, b"\x00\x01\x02\x03\xff\xfe\xfd\r\n\r\n", &[400]);
    // What a TLS client says first.
    expect_error(&s, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x9a\x8b\r\n\r\n", &[400]);
    expect_error(&s, b"\xde\xad\xbe\xef / HTTP/1.1\r\nHost: a\r\n\r\n", &[400]);
}

#[test]
fn e400_content_length_and_transfer_encoding() {
    let s = server();
    expect_error(
        &s,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &[400],
    );
    expect_error(
        &s,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        &[400],
    );
}

#[test]
fn e400_two_different_content_lengths() {
    let s = server();
    expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", &[400]);
}

#[test]
fn e400_invalid_content_length() {
    let s = server();
    for cl in ["abc", "-1", "1 2", "0x10", "+5"] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        expect_error(&s, req.as_bytes(), &[400]);
    }
}

#[test]
fn e400_http11_without_host() {
    let s = server();
    expect_error(&s, b"GET / HTTP/1.1\r\n\r\n", &[400]);
    expect_error(&s, b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", &[400]);
    // HTTP/1.0 needs no Host.
    let mut c = s.connect();
    check_ok(&c.request(b"GET / HTTP/1.0\r\n\r\n"));
}

#[test]
fn e400_bad_chunk_framing() {
    let s = server();
    let head = &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..];
    for body in [&b"xyz\r\nabc\r\n0\r\n\r\n"[..], b"3\r\nabcX\r\n0\r\n\r\n", b"\r\n\r\n"] {
        expect_error(&s, &[head, body].concat(), &[400]);
    }
}

/// `CONNECT` asks for a tunnel, which an origin server does not open: a
/// `200` would tell the client it is open (RFC 9110 §9.3.6).
#[test]
fn e501_connect() {
    let s = server();
    let r = expect_error(&s, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &[501]);
    assert_eq!(r.status, 501);
}

/// `*` is the target of `OPTIONS` only (RFC 9112 §3.2.4), `host:port` the
/// target of `CONNECT` only (§3.2.3): with another method, either is a
/// malformed request. `OPTIONS *` and absolute-form targets are served.
#[test]
fn e400_target_of_no_form_its_method_may_use() {
    let s = server();
    for req in [
        &b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
        b"OPTIONS example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
        // CONNECT's target is authority-form or the request is malformed.
        b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    ] {
        expect_error(&s, req, &[400]);
    }
    let mut c = s.connect();
    for req in [&b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"[..], b"GET http://a/abs HTTP/1.1\r\nHost: a\r\n\r\n"] {
        let r = c.request(req);
        check_ok(&r);
        assert!(!r.has_connection("close"), "{r:?}");
    }
}

/// An `http` or `https` URI with an empty host is invalid and its recipient
/// must reject it (RFC 9110 §4.2.1): `400`, whatever the `Host` field says;
/// a handler would otherwise be told of a request for no host.
#[test]
fn e400_http_uri_with_an_empty_host() {
    let s = server();
    for req in [
        &b"GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET https://:443/a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://user@/a HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        expect_error(&s, req, &[400]);
    }
}

/// A coding this server does not implement before the final `chunked`:
/// `501` (RFC 9112 §6.1).
#[test]
fn e501_unsupported_transfer_coding() {
    let s = server();
    expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", &[501]);
}

/// A last transfer coding other than `chunked`: the body's end cannot be
/// found, so `400` and a close (RFC 9112 §6.3); the bytes after the head
/// are never taken for a request. Until 2026-12-07 it got `501`.
#[test]
fn e400_transfer_coding_not_ending_in_chunked() {
    let s = server();
    for codings in ["gzip", "identity", "chunked, gzip", "chunked;q=1", ""] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {codings}\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        expect_error(&s, req.as_bytes(), &[400]);
    }
}

/// `chunked` applied twice, in one field line or in two: a sender MUST NOT
/// do it (RFC 9112 §6.1), so `400` and a close, not `501`. Until
/// 2026-12-07 the one-line form got `501`.
#[test]
fn e400_chunked_applied_twice() {
    let s = server();
    for field_lines in [
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked, gzip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let req =
            format!("POST / HTTP/1.1\r\nHost: a\r\n{field_lines}\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        expect_error(&s, req.as_bytes(), &[400]);
    }
}

#[test]
fn e431_header_block_over_max_header() {
    let s = server();
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(2000));
    expect_error(&s, req.as_bytes(), &[431]);
    // Many small headers adding up over the limit.
    let mut req = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..40 {
        req.push_str(&format!("X-H{i}: {}\r\n", "w".repeat(30)));
    }
    req.push_str("\r\n");
    assert!(req.len() > 1024 && req.len() < 8192);
    expect_error(&s, req.as_bytes(), &[431]);
}

#[test]
fn e414_request_line_over_max_header() {
    // The limit covers the whole header block, request line included; a
    // target that runs past it before its line ends gets 414 (RFC 9112
    // §3: a server MUST), whether the line ends later or not yet at all.
    let s = server();
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(1100));
    expect_error(&s, long.as_bytes(), &[414]);
    let unfinished = format!("GET /{}", "u".repeat(3000));
    expect_error(&s, unfinished.as_bytes(), &[414]);
    // A long target whose line ends within the limit, with fields that do
    // not: the fields are too large, not the URI.
    let line_fits = format!("GET /{} HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "u".repeat(900), "v".repeat(300));
    expect_error(&s, line_fits.as_bytes(), &[431]);
}

#[test]
fn e431_without_waiting_for_end_of_headers() {
    // The block is already over the limit: no need to wait for its end.
    let s = server();
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}", "v".repeat(3000));
    expect_error(&s, req.as_bytes(), &[431]);
}

#[test]
fn header_block_under_max_header_is_fine() {
    let s = server();
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Medium: {}\r\n\r\n", "v".repeat(800));
    assert!(req.len() < 1000);
    let mut c = s.connect();
    check_ok(&c.request(req.as_bytes()));
    c.get_ok();
}

fn with_headers(total: usize) -> Vec<u8> {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 1..total {
        req.push_str(&format!("X-{i}: 1\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

#[test]
fn e431_more_than_64_headers() {
    let s = Server::start(&["--workers", "1"]); // default --max-header 8192
    let mut c = s.connect();
    check_ok(&c.request(&with_headers(64)));
    expect_error(&s, &with_headers(65), &[431]);
    expect_error(&s, &with_headers(200), &[431]);
}

#[test]
fn e417_unknown_expectation() {
    let s = server();
    expect_error(&s, b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nhi", &[417]);
    expect_error(&s, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", &[417]);
}

#[test]
fn error_after_good_pipelined_request() {
    let s = server();
    let mut c = s.connect();
    c.send(&[GET, b"BAD REQUEST LINE\r\n\r\n", GET].concat());
    c.read_ok_answers(&[false]);
    let r = c.read();
    check_error(&r, 400);
    // The request after the bad one is not answered.
    c.expect_closed();
    s.connect().get_ok();
}

#[test]
fn errors_do_not_harm_other_connections() {
    let s = server();
    let mut keep = s.connect();
    keep.get_ok();
    for req in [
        &b"GARBAGE\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        expect_error(&s, req, &[400, 413, 501]);
        keep.get_ok();
    }
    keep.expect_silent_open(Duration::from_millis(100));
    keep.get_ok();
}

#[test]
fn error_responses_are_counted_and_worker_survives() {
    let s = server();
    let bad: [&[u8]; 6] = [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"\x00\x00\x00\x00\r\n\r\n",
    ];
    for req in bad {
        expect_error(&s, req, &[400, 413, 501]);
    }
    // expect_error also did one good request after each error.
    let want = 2 * bad.len() as u64;
    let ok = eventually(Duration::from_secs(3), || {
        let (_, requests, live) = s.stats_totals();
        requests == want && live == 0
    });
    let stats = s.stats();
    assert!(ok, "expected requests == {want} (errors count) and live == 0, stats: {stats}");
    assert!(!s.log().iter().any(|l| l.contains("exited") || l.contains("killed")), "a worker died: {:?}", s.log());
}

#[test]
fn e400_control_bytes_in_header_value() {
    let s = server();
    expect_error(&s, b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n", &[400]);
}

/// Closes `c` with an RST (SO_LINGER 0) instead of a FIN.
fn reset(c: Conn) {
    let s = c.r.into_inner();
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads a valid `linger` of the size given, on an open socket.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    drop(s);
}

#[test]
fn clients_vanishing_mid_request_do_not_harm_the_worker() {
    let s = server();
    let mut keep = s.connect();
    keep.get_ok();
    for i in 0..30 {
        let mut c = s.connect();
        match i % 3 {
            0 => c.send(b"GET / HTTP/1.1\r\nHo"),
            1 => c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc"),
            _ => c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
        }
        if i % 2 == 0 {
            reset(c);
        } else {
            drop(c);
        }
    }
    // Clients that leave with many answers still due.
    for _ in 0..10 {
        let mut c = s.connect();
        c.send(&repeat(GET, 2000));
        reset(c);
    }
    keep.get_ok();
    s.connect().get_ok();
    let ok = eventually(Duration::from_secs(3), || s.stats_totals().2 == 1);
    assert!(ok, "only the kept connection should be live: {}", s.stats());
    assert!(!s.log().iter().any(|l| l.contains("exited") || l.contains("killed")), "a worker died: {:?}", s.log());
}

/// After an error answer the server sends its FIN at once and lingers,
/// still reading, for the client's: a client that reads to the end and
/// then writes is not reset. Before, on epoll, a connection with no event
/// pending got its FIN only at the linger's end (2 s), with the close, so
/// that write met a reset.
#[test]
fn error_answer_fin_comes_while_the_server_still_lingers() {
    // A worker's own connection: its close is the last (a handed one's
    // copy stays open a little longer in the worker and the master).
    let s = Server::start(&["--workers", "1", "--mode", "shared"]);
    let mut c = s.connect();
    // An answered request first: the connection's events so far are spent.
    c.get_ok();
    c.send(b"NOT HTTP\r\n\r\n");
    let r = c.try_read().unwrap_or_else(|e| panic!("expected 400, reading failed: {e}"));
    check_error(&r, 400);
    c.expect_closed();
    // The server still reads: this is discarded, not answered with a reset.
    c.send(b"x");
    c.shutdown_write();
    let (from, to) = (c.stream().local_addr().expect("the client's address").port(), s.addr().port());
    assert!(
        eventually(Duration::from_secs(5), || !util::sockets::socket_open(from, to)),
        "the connection from port {from} did not end"
    );
    let error = c.stream().take_error().expect("SO_ERROR");
    assert!(error.is_none(), "the server reset the connection while it should linger: {error:?}");
}

#[test]
fn errors_answering_head_carry_no_content() {
    // RFC 9110 §9.3.2: a HEAD's client reads no content after any answer's
    // head, so bytes after it would be taken for the next response.
    let s = server();
    for (req, code) in [
        (&b"HEAD / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"[..], 417),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"HEAD / HTTP/1.1\r\n\r\n", 400),
    ] {
        let mut stream = connect(s.addr());
        stream.write_all(req).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with(&format!("HTTP/1.1 {code} ")), "{text:?}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text:?}");
        assert!(text.ends_with("\r\n\r\n"), "content after the head of an answer to HEAD: {text:?}");
    }
    s.connect().get_ok();
}

/// A refusal is judged by the refused request's own method, not by the one
/// answered before it on the connection: after a `HEAD`, a `GET` refused
/// before its head was complete (`414`, `431`) gets the content its
/// `Content-Length` promises, and a `HEAD` refused after a `GET` gets none
/// (nginx answers both so). Until 2026-12-05 the `414` and `431` kept the
/// flag of the request before: a client after a `HEAD` read a `414` whose
/// content never came.
#[test]
fn an_error_after_a_head_is_judged_by_its_own_method() {
    let s = server();
    let head = "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    // Refused as soon as they run past --max-header, before their end
    // (which does not come here: the server cannot wait for it).
    let long_line = |method: &str| format!("{method} /{}", "u".repeat(2000));
    let long_field = |method: &str| format!("{method} / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(2000));
    for (first, refused, code) in [
        (head, long_line("GET"), 414),
        (head, long_field("GET"), 431),
        (get, long_line("HEAD"), 414),
        (get, long_field("HEAD"), 431),
    ] {
        let mut stream = connect(s.addr());
        stream.write_all(format!("{first}{refused}").as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all).into_owned();
        let case =
            format!("{} then {}", first.split(' ').next().unwrap_or(""), refused.split(' ').next().unwrap_or(""));
        // The first answer: a `HEAD`'s head alone, a `GET`'s with its content.
        let (first_head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{case}: {text:?}"));
        assert!(first_head.starts_with("HTTP/1.1 200 "), "{case}: {text:?}");
        let rest = if first == get { &rest[content_length(first_head)..] } else { rest };
        // The refusal: its content follows exactly when it answers a `GET`.
        let (error_head, content) = rest.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{case}: {text:?}"));
        assert!(error_head.starts_with(&format!("HTTP/1.1 {code} ")), "{case}: {text:?}");
        let want = if refused.starts_with("HEAD") { 0 } else { content_length(error_head) };
        assert_eq!(content.len(), want, "{case}: the content after the refusal's head: {text:?}");
    }
    s.connect().get_ok();
}

/// The value of `Content-Length` in a response head.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"))
}
