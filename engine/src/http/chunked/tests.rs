//! Chunked bodies whole and byte by byte; line ends, the size line's grammar,
//! the limits on data, extensions and trailers, trailer lines as fields.

use super::*;
use crate::http::limits::MAX_HEADERS;

/// Limits with room for everything but what a test is about.
fn with_max_body(max_body: u64) -> Limits {
    Limits { max_header: 8192, max_body }
}

fn with_max_header(max_header: usize) -> Limits {
    Limits { max_header, max_body: 1 << 20 }
}

/// A last chunk followed by `trailers` and the final empty line.
fn last_chunk_with(trailers: &[u8]) -> Vec<u8> {
    [&b"0\r\n"[..], trailers, b"\r\n"].concat()
}

const BODY: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";

#[test]
fn whole_body_in_one_feed() {
    let mut body = ChunkedBody::new();
    let mut input = BODY.to_vec();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(body.feed(&input, &with_max_body(1 << 20)), ChunkedProgress::Done { consumed: BODY.len() });
}

#[test]
fn one_byte_at_a_time() {
    let mut body = ChunkedBody::new();
    for (i, byte) in BODY.iter().enumerate() {
        let progress = body.feed(std::slice::from_ref(byte), &with_max_body(1 << 20));
        if i + 1 == BODY.len() {
            assert_eq!(progress, ChunkedProgress::Done { consumed: 1 });
        } else {
            assert_eq!(progress, ChunkedProgress::More, "byte {i}");
        }
    }
}

#[test]
fn bare_lf_ends_no_line_of_a_chunked_body() {
    // Chunk-size lines, chunk data, the last chunk, trailer field lines
    // and the final empty line all end in CRLF only: a proxy that looks
    // for CRLF CRLF must agree where the body ends.
    for bad in [
        &b"3\nabc\r\n0\r\n\r\n"[..],
        b"3;x\nabc\r\n",
        b"3 \nabc\r\n",
        b"3\r\nabc\n0\r\n\r\n",
        b"0\n\r\n",
        b"0;x\n\r\n",
        b"3\r\nabc\r\n0\r\nX: y\n\r\n",
        b"3\r\nabc\r\n0\r\nX: y\r\n\n",
        b"3\r\nabc\r\n0\r\n\n",
    ] {
        let progress = ChunkedBody::new().feed(bad, &with_max_body(100));
        assert_eq!(progress, ChunkedProgress::Invalid, "{:?}", String::from_utf8_lossy(bad));
    }
    let body = b"3\r\nabc\r\n0\r\nX: y\r\n\r\n";
    assert_eq!(ChunkedBody::new().feed(body, &with_max_body(100)), ChunkedProgress::Done { consumed: body.len() });
}

#[test]
fn chunk_size_lines_keep_to_the_grammar() {
    // RFC 9112 §7.1.1: chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF,
    // a value a token or a quoted-string. Whitespace with no `;` after it,
    // a `;` with no name, a `=` with no value: each read one way by one
    // parser and another by the next ("funky chunks").
    let mut wrong = Vec::new();
    // A chunk of five bytes, or the last chunk, whatever follows its size.
    let body = |line: &[u8]| {
        let rest: &[u8] = if line.starts_with(b"0") { b"\r\n" } else { b"hello\r\n0\r\n\r\n" };
        [line, rest].concat()
    };
    for bad in [
        &b"5 \r\n"[..],
        b"5\t\r\n",
        b"5 \t \r\n",
        b"5;\r\n",
        b"5 ;\r\n",
        b"5; \r\n",
        b"5;;a\r\n",
        b"5;a;\r\n",
        b"5;=v\r\n",
        b"5;a=\r\n",
        b"5;a= \r\n",
        b"5;a \r\n",
        b"5;a=b \r\n",
        b"5;a=b c\r\n",
        b"5;a b\r\n",
        b"5;a=\"x\r\n",
        b"5;a=\"x\"y\r\n",
        b"5;a=\"x\" \r\n",
        b"5;a=b\"c\"\r\n",
        b"5;a(b)\r\n",
        b"5;a=\"\x01\"\r\n",
        b"5;a=\"\\\x01\"\r\n",
        b"0 \r\n",
        b"0;\r\n",
    ] {
        let body = body(bad);
        let progress = ChunkedBody::new().feed(&body, &with_max_body(100));
        if progress != ChunkedProgress::Invalid {
            wrong.push(format!("{:?}: {progress:?}", String::from_utf8_lossy(bad)));
        }
    }
    for good in [
        &b"5\r\n"[..],
        b"5;name\r\n",
        b"5;name=value\r\n",
        b"5 ;name\r\n",
        b"5\t;name\r\n",
        b"5;name=\"quoted\"\r\n",
        b"5;a;b=1;c=\"x y\"\r\n",
        b"5 ;a=1 ;b \t; c = \"d\" ;e\r\n",
        b"5; a = b\r\n",
        b"5;a=\"\"\r\n",
        b"5;a=\"x;y=z\"\r\n",
        b"5;a=\"\\\"\\\\\"\r\n",
        b"5;a=\"caf\xc3\xa9\"\r\n",
        b"5;!#$%&'*+-.^_`|~09az=!#$%&'*+-.^_`|~09az\r\n",
        b"0;last\r\n",
        b"0 ;a=\"b\"\r\n",
    ] {
        let body = body(good);
        let progress = ChunkedBody::new().feed(&body, &with_max_body(100));
        if progress != (ChunkedProgress::Done { consumed: body.len() }) {
            wrong.push(format!("{:?}: {progress:?}", String::from_utf8_lossy(good)));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn too_large_is_refused_at_the_size_line() {
    let mut body = ChunkedBody::new();
    assert_eq!(body.feed(b"3e8\r\n", &with_max_body(1000)), ChunkedProgress::More);
    let mut body = ChunkedBody::new();
    assert_eq!(body.feed(b"3e9\r\n", &with_max_body(1000)), ChunkedProgress::BodyTooLarge);
}

#[test]
fn extension_bytes_count_with_the_data() {
    // 6 bytes after the size (";a=bcd") and 4 of data: 10 in all.
    let body = b"4;a=bcd\r\nabcd\r\n0\r\n\r\n";
    assert_eq!(ChunkedBody::new().feed(body, &with_max_body(10)), ChunkedProgress::Done { consumed: body.len() });
    assert_eq!(ChunkedBody::new().feed(body, &with_max_body(9)), ChunkedProgress::BodyTooLarge);
    // Whitespace before the `;` and the last chunk's extensions count too:
    // " \t;x" and ";y" are 6 bytes, with 1 of data.
    let body = b"1 \t;x\r\na\r\n0;y\r\n\r\n";
    assert_eq!(ChunkedBody::new().feed(body, &with_max_body(7)), ChunkedProgress::Done { consumed: body.len() });
    assert_eq!(ChunkedBody::new().feed(body, &with_max_body(6)), ChunkedProgress::BodyTooLarge);
}

#[test]
fn extension_over_max_body_is_refused_before_its_line_ends() {
    let mut body = ChunkedBody::new();
    assert_eq!(body.feed(b"0;", &with_max_body(2)), ChunkedProgress::More);
    assert_eq!(body.feed(b"x", &with_max_body(2)), ChunkedProgress::More);
    assert_eq!(body.feed(b"y", &with_max_body(2)), ChunkedProgress::BodyTooLarge);
    // An endless extension costs at most max_body + 1 bytes of reading.
    let mut body = ChunkedBody::new();
    let endless = [b'x'; 4096];
    assert_eq!(body.feed(b"1;", &with_max_body(1024)), ChunkedProgress::More);
    assert_eq!(body.feed(&endless, &with_max_body(1024)), ChunkedProgress::BodyTooLarge);
}

#[test]
fn leading_zeros_of_a_chunk_size_are_no_digits_but_count_as_framing() {
    let limits = with_max_body(1024);
    let zeros = "0".repeat(40);
    for (body, want) in [
        (format!("{zeros}1\r\na\r\n{zeros}\r\n\r\n"), ChunkedProgress::Done { consumed: 90 }),
        (format!("{zeros}FFFFFFFFFFFFFFFF\r\n"), ChunkedProgress::BodyTooLarge),
        (format!("{zeros}10000000000000000\r\n"), ChunkedProgress::Invalid),
    ] {
        assert_eq!(ChunkedBody::new().feed(body.as_bytes(), &limits), want, "{body:?}");
    }
    // Each zero after the first counts with the body: an endless line ends.
    let mut body = ChunkedBody::new();
    assert_eq!(body.feed(&[b'0'; 1025], &limits), ChunkedProgress::More, "1024 zeros counted: at the limit");
    assert_eq!(body.feed(b"0", &limits), ChunkedProgress::BodyTooLarge);
}

#[test]
fn malformed_framing_is_invalid() {
    for bad in [
        &b"x\r\n"[..],
        b"3\r\nabcX",
        b"3 x\r\n",
        b"11111111111111111\r\n",
        b"0\r\n\rX",
        b"3;a=\x00\r\n",
        b"3;a\x7f\r\n",
        b"3;a\rb\r\n",
    ] {
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(bad, &with_max_body(u64::MAX)), ChunkedProgress::Invalid, "{:?}", bad);
    }
}

#[test]
fn trailer_bytes_count_against_max_header() {
    // Two field lines of 11 and 7 bytes, line ends included.
    let body = last_chunk_with(b"X-A: 1234\r\nB: xy\r\n");
    assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(18)), ChunkedProgress::Done { consumed: body.len() });
    assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(17)), ChunkedProgress::TrailersTooLarge);
    // The final empty line is not part of the section: no trailers fit any limit.
    assert_eq!(ChunkedBody::new().feed(b"0\r\n\r\n", &with_max_header(0)), ChunkedProgress::Done { consumed: 5 });
}

#[test]
fn trailer_over_max_header_is_refused_before_its_line_ends() {
    let mut body = ChunkedBody::new();
    assert_eq!(body.feed(b"0\r\nX: ", &with_max_header(256)), ChunkedProgress::More);
    assert_eq!(body.feed(&[b'v'; 253], &with_max_header(256)), ChunkedProgress::More);
    assert_eq!(body.feed(b"v", &with_max_header(256)), ChunkedProgress::TrailersTooLarge);
}

#[test]
fn trailer_fields_over_max_headers_are_refused() {
    let field = b"X: 1\r\n";
    let body = last_chunk_with(&field.repeat(MAX_HEADERS));
    assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(8192)), ChunkedProgress::Done { consumed: body.len() });
    // One more is refused at its first byte.
    let mut body = ChunkedBody::new();
    let fields = [&b"0\r\n"[..], &field.repeat(MAX_HEADERS)].concat();
    assert_eq!(body.feed(&fields, &with_max_header(8192)), ChunkedProgress::More);
    assert_eq!(body.feed(b"X", &with_max_header(8192)), ChunkedProgress::TrailersTooLarge);
}

#[test]
fn trailer_lines_must_be_fields() {
    for bad in [
        &b"NoColon\r\n"[..],
        b"NoColon\n",
        b"Bad Name: v\r\n",
        b"X : v\r\n",
        b": empty-name\r\n",
        b" folded\r\n",
        b"\tfolded\r\n",
        b"X(y): v\r\n",
        b"X\xe9: v\r\n",
        b"X: a\x00b\r\n",
        b"X: a\rb\r\n",
        b"X: v\r\r\n",
    ] {
        let body = last_chunk_with(bad);
        assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(8192)), ChunkedProgress::Invalid, "{:?}", bad);
    }
}

#[test]
fn trailer_fields_that_are_well_formed_pass() {
    for good in [
        &b"X-Checksum: 1234\r\n"[..],
        b"x:\r\n",
        b"X:v\r\n",
        b"X: a b\t c \r\n",
        b"X: caf\xc3\xa9\r\n",
        b"!#$%&'*+-.^_`|~09az: \"quoted\"\r\n",
    ] {
        let body = last_chunk_with(good);
        let progress = ChunkedBody::new().feed(&body, &with_max_header(8192));
        assert_eq!(progress, ChunkedProgress::Done { consumed: body.len() }, "{:?}", good);
    }
}
