//! The handler run and its response framed: statuses, HEAD, 205, a
//! later minor version, the peer, a response too large, a panic; the body
//! buffers lent and given back.

use std::fmt::Write as _;

use super::frame::FRAMING;
use super::*;
use crate::handler::{Response, Written};

struct Echo;

impl Handler for Echo {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        if req.path() == "/missing" {
            res.status(404);
            return;
        }
        if req.path() == "/reset" {
            res.status(205).body(b"content a 205 must not carry");
            return;
        }
        if req.path() == "/close" {
            res.close();
        }
        if req.path() == "/peer" {
            let _ = write!(res, "{:?}", req.peer_addr());
            return;
        }
        if req.path() == "/panic" {
            res.header("X-Half", "done").body(b"half");
            panic!("the handler panics (expected by the test)");
        }
        res.header("X-Method", req.method()).body(req.body());
    }
}

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

fn run(head: &[u8], body: &[u8], head_only: bool, framing: Framing) -> (String, bool) {
    let mut handler = Echo;
    let mut scratch = ResponseScratch::new(64).expect("a scratch");
    let mut out = [0u8; 512];
    let answered =
        answer(&mut handler, &mut scratch, head, body, None, head_only, framing, DATE, &mut out).expect("fits");
    if let Some(at) = answered.keep_alive_at {
        assert_eq!(&out[at..at + KEEP_ALIVE.len()], KEEP_ALIVE);
    }
    (String::from_utf8(out[..answered.len].to_vec()).expect("ASCII"), answered.closes)
}

#[test]
fn the_engine_frames_what_the_handler_wrote() {
    let (text, close) = run(b"POST /echo HTTP/1.1\r\nHost: a\r\n\r\n", b"hi", false, Framing::KeepAlive);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Method: POST\r\n\
         Content-Length: 2\r\n\r\nhi"
    );
    assert!(!close);
}

#[test]
fn head_gets_the_length_without_the_body_and_framing_is_kept() {
    let (text, _) = run(b"HEAD / HTTP/1.0\r\n\r\n", b"", true, Framing::KeepAliveField);
    assert!(text.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"), "{text}");
    let (text, close) = run(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
    assert!(close);
    assert!(text.contains("Connection: close\r\n"), "{text}");
    let (text, _) = run(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
}

/// A `205 Reset Content` carries no content (RFC 9110 §15.3.6), whatever
/// the handler wrote: until 2026-12-06 its body went out.
#[test]
fn a_205_goes_without_the_body_written() {
    let (text, close) = run(b"POST /reset HTTP/1.1\r\nHost: a\r\n\r\n", b"", false, Framing::KeepAlive);
    assert!(text.starts_with("HTTP/1.1 205 "), "{text}");
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    assert!(!close);
}

/// The handler sees a later HTTP/1 minor version as 1.1: `answer`
/// parses the head again, and must take what the parser took.
#[test]
fn a_later_http1_minor_version_reaches_the_handler_as_http11() {
    let (text, close) = run(b"PUT /echo HTTP/1.2\r\nHost: a\r\n\r\n", b"hi", false, Framing::KeepAlive);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("X-Method: PUT\r\n") && text.ends_with("\r\n\r\nhi"), "{text}");
    assert!(!close);
}

/// The driver's address of the connection's client reaches the
/// handler as it was given, `None` when there is none.
#[test]
fn the_peer_given_reaches_the_handler() {
    let mut handler = Echo;
    let mut scratch = ResponseScratch::new(64).expect("a scratch");
    let mut out = [0u8; 512];
    let head = b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n";
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().expect("an address");
    for (peer, said) in [(None, "None"), (Some(mapped), "Some([::ffff:127.0.0.1]:40000)")] {
        let answered = answer(&mut handler, &mut scratch, head, b"", peer, false, Framing::KeepAlive, DATE, &mut out)
            .expect("fits");
        let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
        assert!(text.ends_with(&format!("\r\n\r\n{said}")), "{text}");
    }
}

/// The head of any status fits the room kept for it, its length said
/// in 20 digits (the most a `u64` takes) rather than the 1 here.
#[test]
fn the_head_of_every_status_fits_the_framing_room() {
    for status in 200..=599 {
        let written = Written { status, fields: b"", body: b"x", server_set: false, close: false, broken: false };
        let mut out = [0u8; 512];
        let (len, _) = frame(&written, false, Framing::KeepAliveField, DATE, &mut out).expect("fits");
        let bodyless = status == 204 || status == 304;
        let head = if bodyless { len } else { len - 1 + 19 };
        assert!(head <= FRAMING, "{status}: {head} bytes of head");
    }
}

#[test]
fn a_response_too_large_becomes_500() {
    let (text, _) = run(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", &[b'x'; 100], false, Framing::KeepAlive);
    assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nInternal Server Error\n"), "{text}");
}

#[test]
fn a_head_request_whose_response_is_too_large_gets_a_500_without_a_body() {
    let (text, _) = run(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &[b'x'; 100], true, Framing::KeepAlive);
    assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
    assert!(
        text.ends_with("Content-Length: 22\r\n\r\n"),
        "the head alone, else a pipelined answer after it would be misread: {text}"
    );
}

#[test]
fn a_panicking_handler_costs_its_request_a_500_and_the_connection() {
    let mut handler = Echo;
    let mut scratch = ResponseScratch::new(64).expect("a scratch");
    let mut out = [0u8; 512];
    for (head_only, framing) in [(false, Framing::KeepAlive), (true, Framing::KeepAliveField)] {
        let head: &[u8] = if head_only {
            b"HEAD /panic HTTP/1.1\r\nHost: a\r\n\r\n"
        } else {
            b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n"
        };
        let answered =
            answer(&mut handler, &mut scratch, head, b"", None, head_only, framing, DATE, &mut out).expect("fits");
        let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n") && !text.contains("X-Half") && !text.contains("half"), "{text}");
        assert_eq!(text.ends_with("\r\n\r\n"), head_only, "{text}");
        assert!(answered.closes && answered.keep_alive_at.is_none());
    }
    assert_eq!(scratch.panics(), 2);
    // The next request is answered as usual, nothing of the half-written one in it.
    let answered = answer(
        &mut handler,
        &mut scratch,
        b"POST /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        b"hi",
        None,
        false,
        Framing::KeepAlive,
        DATE,
        &mut out,
    )
    .expect("fits");
    let text = String::from_utf8(out[..answered.len].to_vec()).expect("ASCII");
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nhi") && !text.contains("X-Half"),
        "{text}"
    );
    assert!(!answered.closes);
}

#[test]
fn body_buffers_are_lent_and_given_back() {
    let mut pool = BodyPool::new(2, 8).expect("a pool");
    let a = pool.take().expect("one");
    let b = pool.take().expect("two");
    assert!(pool.take().is_none());
    pool.buffer(a).copy_from_slice(b"12345678");
    pool.give(a, 8);
    assert_eq!(pool.take(), Some(a));
    assert_ne!(a, b);
}

#[test]
fn a_body_buffer_given_back_after_a_large_body_gives_its_pages_back() {
    let size = 4 * crate::lazy_bytes::KEPT;
    let mut pool = BodyPool::new(1, size).expect("a pool");
    let index = pool.take().expect("one");
    pool.buffer(index).fill(7);
    pool.give(index, 100);
    assert!(pool.contents(index, size).iter().all(|&b| b == 7), "a small body's buffer is left as it is");
    assert_eq!(pool.take(), Some(index));
    pool.give(index, size);
    let kept = crate::lazy_bytes::KEPT;
    assert!(pool.contents(index, kept).iter().all(|&b| b == 7), "its first bytes stay");
    assert!(pool.contents(index, size)[kept..].iter().all(|&b| b == 0), "the rest is given back");
}
