//! Request bodies (Content-Length and chunked) are read and discarded exactly:
//! a request that follows on the same connection must parse.

use crate::util;

use std::io::Write;
use std::thread;
use std::time::Duration;
use util::*;

fn server() -> Server {
    Server::start(&["--workers", "1"])
}

/// Body bytes that look like a request, so a server that does not skip the body
/// would answer an extra request (or choke on it).
const SNEAKY: &[u8] = b"GET /not-a-request HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends `req`, `n` requests in one write, and checks that exactly `n` standard
/// 200s come back: nothing more within 200 ms, and the connection stays open.
fn expect_ok_answers(c: &mut Conn, req: &[u8], n: usize) {
    c.send(req);
    for _ in 0..n {
        check_ok(&c.read());
    }
    c.expect_silent_open(Duration::from_millis(200));
}

#[test]
fn content_length_body_then_next_request() {
    let s = server();
    let mut c = s.connect();
    let mut req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", SNEAKY.len()).into_bytes();
    req.extend_from_slice(SNEAKY);
    // Nothing extra answered for the body bytes.
    expect_ok_answers(&mut c, &req, 1);
    c.get_ok();
}

#[test]
fn content_length_body_pipelined_with_next_request() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789".to_vec();
    req.extend_from_slice(GET);
    req.extend_from_slice(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
    req.extend_from_slice(GET);
    expect_ok_answers(&mut c, &req, 4);
}

#[test]
fn content_length_body_split_across_writes() {
    let s = server();
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n01234");
    thread::sleep(Duration::from_millis(50));
    c.expect_silent_open(Duration::from_millis(100));
    c.send(b"56789abcde");
    thread::sleep(Duration::from_millis(50));
    c.send(b"fghi");
    thread::sleep(Duration::from_millis(50));
    c.expect_silent_open(Duration::from_millis(100));
    // Last body byte together with the next request.
    let mut rest = b"j".to_vec();
    rest.extend_from_slice(GET);
    c.send(&rest);
    check_ok(&c.read());
    check_ok(&c.read());
}

#[test]
fn large_content_length_body() {
    // 900 KB (under the default 1 MiB --max-body): many reads' worth of body.
    let s = server();
    let mut c = s.connect();
    let n = 900 * 1024;
    let mut req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    req.extend((0..n).map(|i| SNEAKY[i % SNEAKY.len()]));
    req.extend_from_slice(GET);
    let mut w = c.stream().try_clone().unwrap();
    let writer = thread::spawn(move || w.write_all(&req));
    check_ok(&c.read());
    check_ok(&c.read());
    writer.join().unwrap().expect("write body");
    c.expect_silent_open(Duration::from_millis(200));
}

#[test]
fn body_exactly_max_body_is_accepted() {
    let s = Server::start(&["--workers", "1", "--max-body", "1000"]);
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1000));
    check_ok(&c.request(&req));
    let req = [&b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..], &chunked(&[b'y'; 1000], 300)]
        .concat();
    check_ok(&c.request(&req));
    c.get_ok();
}

#[test]
fn chunked_body_then_next_request() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(SNEAKY, 7));
    expect_ok_answers(&mut c, &req, 1);
    c.get_ok();
}

#[test]
fn chunked_body_pipelined_with_next_request() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(b"hello, chunked world", 5));
    req.extend_from_slice(GET);
    req.extend_from_slice(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    req.extend_from_slice(GET);
    expect_ok_answers(&mut c, &req, 4);
}

#[test]
fn chunked_with_uppercase_hex_and_mixed_case_coding() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n".to_vec();
    req.extend_from_slice(b"1A\r\n");
    req.extend_from_slice(&[b'z'; 26]);
    req.extend_from_slice(b"\r\n000\r\n\r\n");
    check_ok(&c.request(&req));
    c.get_ok();
}

#[test]
fn chunked_named_with_empty_list_elements_is_chunked() {
    // RFC 9110 §5.6.1: a recipient ignores empty list elements.
    let s = server();
    let mut c = s.connect();
    for codings in ["chunked,", " , chunked ,"] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {codings}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        check_ok(&c.request(req.as_bytes()));
    }
    c.get_ok();
}

#[test]
fn chunked_with_extensions() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(b"5;name=value\r\nhello\r\n");
    req.extend_from_slice(b"6;a=b;quoted=\"x y\"\r\n world\r\n");
    req.extend_from_slice(b"0;last\r\n\r\n");
    check_ok(&c.request(&req));
    c.get_ok();
}

#[test]
fn chunked_with_trailers() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n".to_vec();
    req.extend_from_slice(b"5\r\nhello\r\n0\r\nX-Checksum: 1234\r\nX-Other: yes\r\n\r\n");
    req.extend_from_slice(GET);
    expect_ok_answers(&mut c, &req, 2);
}

#[test]
fn chunked_split_across_writes() {
    let s = server();
    let mut c = s.connect();
    // Split inside the size line, inside data, between data and CRLF, between the
    // CR and LF, inside the last chunk and inside the trailer section.
    let pieces: [&[u8]; 10] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1",
        b"0\r\n0123",
        b"456789abcdef",
        b"\r",
        b"\n3;ext",
        b"=1\r\nxyz\r\n",
        b"0",
        b"\r\nX-T: 1\r",
        b"\n\r",
        b"\n",
    ];
    for (i, p) in pieces.iter().enumerate() {
        c.send(p);
        thread::sleep(Duration::from_millis(30));
        if i + 1 < pieces.len() {
            c.expect_silent_open(Duration::from_millis(20));
        }
    }
    check_ok(&c.read());
    c.get_ok();
}

#[test]
fn chunked_body_one_byte_at_a_time() {
    let s = server();
    let mut c = s.connect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(b"4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nT: v\r\n\r\n");
    c.send_bytewise(&req, Duration::from_millis(1));
    check_ok(&c.read());
    c.get_ok();
}

#[test]
fn large_chunked_body() {
    let s = server();
    let mut c = s.connect();
    let body: Vec<u8> = (0..512 * 1024).map(|i| SNEAKY[i % SNEAKY.len()]).collect();
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&chunked(&body, 4093)); // odd size: chunk edges fall anywhere
    req.extend_from_slice(GET);
    let mut w = c.stream().try_clone().unwrap();
    let writer = thread::spawn(move || w.write_all(&req));
    check_ok(&c.read());
    check_ok(&c.read());
    writer.join().unwrap().expect("write body");
}

#[test]
fn expect_100_continue_with_content_length() {
    let s = server();
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 100, "expected 100 Continue first, got {r:?}");
    assert_eq!(r.version, "HTTP/1.1");
    assert!(r.headers.is_empty(), "spec: exactly `HTTP/1.1 100 Continue\\r\\n\\r\\n`, got {r:?}");
    // Nothing else until the body arrives.
    c.expect_silent_open(Duration::from_millis(200));
    c.send(b"hello world");
    check_ok(&c.read());
    c.get_ok();
}

#[test]
fn expect_100_continue_with_chunked() {
    let s = server();
    let mut c = s.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 100, "expected 100 Continue first, got {r:?}");
    c.send(b"3\r\nabc\r\n0\r\n\r\n");
    check_ok(&c.read());
    c.get_ok();
}

#[test]
fn expect_100_continue_body_sent_without_waiting() {
    // A client may send the body right away: an optional 100, then the 200.
    let s = server();
    let mut c = s.connect();
    let mut req = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody".to_vec();
    req.extend_from_slice(GET);
    c.send(&req);
    // RFC 9110 lets the server skip the 100 once the body has arrived: allow both.
    let mut r = c.read();
    if r.status == 100 {
        r = c.read();
    }
    check_ok(&r);
    check_ok(&c.read());
    c.expect_silent_open(Duration::from_millis(200));
}
