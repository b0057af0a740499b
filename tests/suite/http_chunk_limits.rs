//! A chunked body's framing around its data is bounded and checked: chunk
//! extensions count against `--max-body` (413), trailers against `--max-header`
//! and the 64-field cap (431), trailer lines must be fields, chunk-size lines
//! keep to the grammar and every line ends in CRLF (400); each refusal comes as
//! soon as the limit is passed.

use crate::util;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use util::*;

/// The head of a chunked POST; the framing follows it.
const CHUNKED_HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A chunked POST with `framing` as its body.
fn post_chunked(framing: &[u8]) -> Vec<u8> {
    [CHUNKED_HEAD, framing].concat()
}

/// A chunked POST whose last chunk carries `trailers` (each line with its line end).
fn post_with_trailers(trailers: &[u8]) -> Vec<u8> {
    post_chunked(&[&b"0\r\n"[..], trailers, b"\r\n"].concat())
}

/// Checks the worker still serves a new connection: a chunked POST, then a GET.
fn still_serving(s: &Server) {
    let mut c = s.connect();
    check_ok(&c.request(&post_chunked(&chunked(b"still serving", 4))));
    c.get_ok();
}

/// Sends `req` on a fresh connection (all of it, or as much as the server reads
/// before it answers), expects `code` and the server's close, then checks the
/// worker still serves.
fn expect_refused(s: &Server, req: &[u8], code: u16) {
    let mut c = s.connect();
    let _ = c.try_send(req);
    let r = c.try_read().unwrap_or_else(|e| panic!("expected {code}, reading failed: {e}"));
    check_error(&r, code);
    // The server lingers for the client's FIN after an error reply.
    c.shutdown_write();
    c.expect_closed();
    still_serving(s);
}

/// Sends `req` on a fresh connection and expects the standard 200, keep-alive.
fn expect_ok(s: &Server, req: &[u8]) {
    let mut c = s.connect();
    let r = c.request(req);
    check_ok(&r);
    assert!(!r.has_connection("close"), "{r:?}");
    c.get_ok();
}

#[test]
fn chunk_extension_counts_against_max_body() {
    const EXTENSION_BYTES: usize = 10 << 20;
    const PIECE: usize = 64 << 10;
    let s = Server::start(&["--workers", "1", "--max-body", "1024"]);
    let mut other = s.connect();
    other.get_ok();

    let mut c = s.connect();
    c.send(&post_chunked(b"1;"));
    // Stream a 10 MB extension, then end the request as a client would; stop
    // at once when told, or when the server is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer_stream = c.stream().try_clone().expect("clone the client socket");
    let writer_stop = Arc::clone(&stop);
    let writer = thread::spawn(move || {
        let piece = [b'x'; PIECE];
        let mut sent = 0;
        while sent < EXTENSION_BYTES {
            if writer_stop.load(Ordering::Relaxed) || writer_stream.write_all(&piece).is_err() {
                return;
            }
            sent += PIECE;
        }
        let _ = writer_stream.write_all(b"\r\na\r\n0\r\n\r\n");
    });
    let r = c.try_read();
    stop.store(true, Ordering::Relaxed);
    let r = r.unwrap_or_else(|e| panic!("expected 413, reading failed: {e}"));
    check_error(&r, 413);
    c.expect_closed();
    writer.join().expect("the writer thread");
    c.shutdown_write();

    other.get_ok();
    still_serving(&s);
}

#[test]
fn chunk_extension_over_max_body_is_refused_before_its_line_ends() {
    let s = Server::start(&["--workers", "1", "--max-body", "1024"]);
    // No line end ever comes: the answer must not wait for one.
    let mut req = post_chunked(b"1;");
    req.extend_from_slice(&[b'x'; 2048]);
    expect_refused(&s, &req, 413);
}

#[test]
fn chunk_extensions_and_data_up_to_max_body_pass() {
    let s = Server::start(&["--workers", "1", "--max-body", "1024"]);
    // Extensions " ;eee…" (996 + extra bytes) and ";a=1" (4), data 16 + 8:
    // 1024 bytes, then one more.
    let request = |extra: usize| {
        let extension = format!(" ;{}", "e".repeat(994 + extra));
        let framing = format!("10{extension}\r\n{}\r\n8;a=1\r\n{}\r\n0\r\n\r\n", "d".repeat(16), "d".repeat(8));
        post_chunked(framing.as_bytes())
    };
    expect_ok(&s, &request(0));
    expect_refused(&s, &request(1), 413);
}

#[test]
fn trailer_bytes_count_against_max_header() {
    let s = Server::start(&["--workers", "1", "--max-header", "1024"]);
    // One field line of 1024 bytes (its CRLF included), then of 1025.
    let field = |value_len: usize| format!("X-Pad: {}\r\n", "v".repeat(value_len)).into_bytes();
    assert_eq!(field(1015).len(), 1024);
    expect_ok(&s, &post_with_trailers(&field(1015)));
    expect_refused(&s, &post_with_trailers(&field(1016)), 431);
    // Many small fields adding up over the limit.
    let mut fields = Vec::new();
    for i in 0..40 {
        fields.extend_from_slice(format!("X-T{i}: {}\r\n", "w".repeat(30)).as_bytes());
    }
    assert!(fields.len() > 1024);
    expect_refused(&s, &post_with_trailers(&fields), 431);
    // A trailer line that never ends is refused once it is over the limit.
    let mut endless = post_chunked(b"0\r\nX-Pad: ");
    endless.extend_from_slice(&[b'v'; 2048]);
    expect_refused(&s, &endless, 431);
}

#[test]
fn trailer_fields_over_64_are_refused() {
    // The default --max-header (8 KiB) holds 65 short fields: the count refuses them.
    let s = Server::start(&["--workers", "1"]);
    let fields = |n: usize| (0..n).map(|i| format!("X-T{i}: 1\r\n")).collect::<String>().into_bytes();
    expect_ok(&s, &post_with_trailers(&fields(64)));
    expect_refused(&s, &post_with_trailers(&fields(65)), 431);
    // Refused at the 65th field, without waiting for the end of the section.
    let mut unfinished = post_chunked(b"0\r\n");
    unfinished.extend_from_slice(&fields(65));
    expect_refused(&s, &unfinished, 431);
}

#[test]
fn trailer_line_without_colon_is_400() {
    let s = Server::start(&["--workers", "1"]);
    expect_ok(&s, &post_with_trailers(b"X-Checksum: 1234\r\nX-Empty:\r\n"));
    expect_refused(&s, &post_with_trailers(b"NoColonHere\r\n"), 400);
    expect_refused(&s, &post_with_trailers(b"X-Ok: 1\r\nno colon either\r\n"), 400);
}

#[test]
fn trailer_field_name_that_is_not_a_token_is_400() {
    let s = Server::start(&["--workers", "1"]);
    for trailers in [&b"Bad Name: v\r\n"[..], b"X-Space : v\r\n", b": no-name\r\n", b" folded: v\r\n", b"X(y): v\r\n"] {
        expect_refused(&s, &post_with_trailers(trailers), 400);
    }
}

#[test]
fn bare_lf_ending_a_chunk_line_is_400() {
    let s = Server::start(&["--workers", "1"]);
    for framing in [&b"3\nabc\r\n0\r\n\r\n"[..], b"3;ext\nabc\r\n0\r\n\r\n", b"3\r\nabc\n0\r\n\r\n"] {
        expect_refused(&s, &post_chunked(framing), 400);
    }
}

/// Trailer lines and the final empty line end in CRLF, as chunk lines do: a
/// proxy that looks for CRLF CRLF finds the body's end where the server does.
#[test]
fn bare_lf_ending_a_trailer_line_or_the_body_is_400() {
    let s = Server::start(&["--workers", "1"]);
    for framing in [&b"0\r\nX-T: 1\n\r\n"[..], b"0\r\nX-T: 1\r\n\n", b"0\r\n\n", b"0\n\r\n"] {
        expect_refused(&s, &post_chunked(framing), 400);
    }
    expect_ok(&s, &post_with_trailers(b"X-T: 1\r\n"));
}

/// A chunk-size line is the size, then extensions by RFC 9112 §7.1.1's
/// grammar, then CRLF: whitespace with no `;` after it, or a `;` with no
/// name, is refused rather than read one way here and another by a proxy
/// in front ("funky chunks").
#[test]
fn chunk_size_line_outside_the_grammar_is_400() {
    let s = Server::start(&["--workers", "1"]);
    for line in [&b"5 \r\n"[..], b"5;\r\n", b"5 ;\r\n", b"5;a=\r\n", b"5;a b\r\n"] {
        let framing = [line, b"hello\r\n0\r\n\r\n"].concat();
        expect_refused(&s, &post_chunked(&framing), 400);
    }
    for line in
        [&b"5;name\r\n"[..], b"5;name=value\r\n", b"5 ;name\r\n", b"5;name=\"quoted\"\r\n", b"5;a;b=1 ;c=\"x;y\"\r\n"]
    {
        expect_ok(&s, &post_chunked(&[line, b"hello\r\n0\r\n\r\n"].concat()));
    }
}

/// A chunk size is `1*HEXDIG` (RFC 9112 §7.1): leading zeros are no
/// digits of it (nginx takes them so), but they count against
/// `--max-body` as framing, as extensions do. Until 2026-12-07 a size of
/// 17 digits or more was refused (`400`), whatever its value.
#[test]
fn chunk_size_with_leading_zeros_is_served_and_its_zeros_count_as_framing() {
    let s = Server::start(&["--workers", "1", "--max-body", "1000"]);
    let zeros = "0".repeat(20);
    expect_ok(&s, &post_chunked(format!("{zeros}5\r\nhello\r\n{zeros}\r\n\r\n").as_bytes()));
    expect_refused(&s, &post_chunked(format!("{}1\r\na\r\n0\r\n\r\n", "0".repeat(1001)).as_bytes()), 413);
}
