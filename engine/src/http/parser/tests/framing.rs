//! Bodies: `Content-Length`, `chunked`, `Expect`, the transfer codings
//! refused, the body and trailer limits.

use super::*;

#[test]
fn content_length_body_is_consumed_across_reads() {
    let mut parser = RequestParser::new();
    let (got, left) = run(&mut parser, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234", &LIMITS);
    assert!(got.is_empty());
    assert_eq!(left, 0);
    assert!(!parser.between_requests());
    let (got, left) = run(&mut parser, b"56789GET / HTTP/1.1\r\nHost: a\r\n\r\n", &LIMITS);
    assert_eq!(got, [Reply::Ok, Reply::Ok]);
    assert_eq!(left, 0);
}

#[test]
fn chunked_body_then_next_request() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(replies(input), [Reply::Ok, Reply::Ok]);
}

#[test]
fn expect_continue_comes_before_the_reply() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(replies(input), [Reply::Continue, Reply::Ok]);
    // No body, nothing to continue: just the answer.
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n";
    assert_eq!(replies(input), [Reply::Ok]);
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n";
    assert_eq!(replies(input), [Reply::ExpectationFailed]);
    // A Content-Length of 0: no content, nothing to continue (RFC 9110
    // §10.1.1 lets a server omit the 100 so; nginx sends it).
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(replies(input), [Reply::Ok]);
}

/// `Expect` is a list (RFC 9110 §10.1.1) whose empty elements are
/// ignored (§5.6.1): until 2026-12-07 the whole value was read as one
/// member, and an empty `Expect` or `100-continue,` got `417`.
#[test]
fn expect_is_a_list_of_members() {
    let with_expect = |value: &str| {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nExpect:{value}\r\nContent-Length: 1\r\n\r\nx");
        replies(head.as_bytes())
    };
    for value in ["", " ", " ,", " 100-continue,", " , 100-Continue", " 100-continue, 100-continue"] {
        let want = if value.contains("100") { vec![Reply::Continue, Reply::Ok] } else { vec![Reply::Ok] };
        assert_eq!(with_expect(value), want, "{value:?}");
    }
    for value in [" 100-continue, teapot", " teapot,", " 100-continue;x"] {
        assert_eq!(with_expect(value), [Reply::ExpectationFailed], "{value:?}");
    }
}

#[test]
fn framing_errors() {
    let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(replies(both), [Reply::BadRequest]);
    let two = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(replies(two), [Reply::BadRequest]);
    // The same value twice: one list of two lengths, as `3, 3` is (nginx
    // refuses both; until 2026-12-07 the first was served, the second not).
    let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(replies(same), [Reply::BadRequest]);
    let same_list = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc";
    assert_eq!(replies(same_list), [Reply::BadRequest]);
    for codings in ["gzip, chunked", "x-custom ; a=b, Chunked"] {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {codings}\r\n\r\n");
        assert_eq!(replies(head.as_bytes()), [Reply::NotImplemented], "{codings:?}");
    }
    let bad_length = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\n";
    assert_eq!(replies(bad_length), [Reply::BadRequest]);
    let te_in_10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(replies(te_in_10), [Reply::BadRequest]);
    let bad_chunk = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_eq!(replies(bad_chunk), [Reply::BadRequest]);
    let no_colon = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNoColon\r\n\r\n";
    assert_eq!(replies(no_colon), [Reply::BadRequest]);
    let bad_name = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX Y: z\r\n\r\n";
    assert_eq!(replies(bad_name), [Reply::BadRequest]);
}

/// RFC 9112 §6.3: a request whose last transfer coding is not
/// `chunked` has a body whose end cannot be found: the server MUST
/// answer `400` and close. Until 2026-12-07 it got `501` (closing too).
#[test]
fn a_last_transfer_coding_other_than_chunked_is_a_bad_request() {
    for codings in
        ["gzip", "identity", "xchunked", "chunked;q=1", "chunked ;", "chunked, gzip", "gzip, chunked, br", "", " , "]
    {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {codings}\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        assert_eq!(replies(request.as_bytes()), [Reply::BadRequest], "{codings:?}");
    }
}

/// RFC 9112 §6.1: a sender MUST NOT apply `chunked` more than once,
/// so a request that lists it twice is malformed: `400` and a close,
/// not the `501` of a coding this server lacks. Until 2026-12-07 it
/// got `501` (closing too).
#[test]
fn chunked_applied_twice_is_a_bad_request() {
    for field_lines in [
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: Chunked , , chunked",
        "Transfer-Encoding: chunked, gzip, chunked",
        "Transfer-Encoding: gzip, chunked, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let request =
            format!("POST / HTTP/1.1\r\nHost: a\r\n{field_lines}\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(replies(request.as_bytes()), [Reply::BadRequest], "{field_lines:?}");
    }
}

#[test]
fn empty_elements_of_the_transfer_coding_list_are_ignored() {
    for codings in ["chunked,", ", chunked", "Chunked , ,", "\tchunked\t,\t"] {
        let input = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {codings}\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        assert_eq!(replies(input.as_bytes()), [Reply::Ok, Reply::Ok], "{codings:?}");
    }
}

#[test]
fn body_limits() {
    let limits = Limits { max_header: 8192, max_body: 10 };
    let long = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(run(&mut RequestParser::new(), long, &limits).0, [Reply::ContentTooLarge]);
    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n";
    assert_eq!(run(&mut RequestParser::new(), chunked, &limits).0, [Reply::ContentTooLarge]);
    // Chunk extensions count with the data (9 + 1 bytes here), and an
    // extension over the limit is refused before its line ends.
    let at_limit = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;xxxxxxxx\r\na\r\n0\r\n\r\n";
    assert_eq!(run(&mut RequestParser::new(), at_limit, &limits).0, [Reply::Ok]);
    let over = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;xxxxxxxxxx";
    assert_eq!(run(&mut RequestParser::new(), over, &limits).0, [Reply::ContentTooLarge]);
}

#[test]
fn trailer_limits_are_the_header_limits() {
    let limits = Limits { max_header: 64, max_body: 10 };
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    let with_trailers = |trailers: &[u8]| [&head[..], trailers, b"\r\n"].concat();
    // One field line of 64 bytes, then of 65.
    let at_limit = with_trailers(format!("X: {}\r\n", "a".repeat(59)).as_bytes());
    assert_eq!(run(&mut RequestParser::new(), &at_limit, &limits).0, [Reply::Ok]);
    let over = with_trailers(format!("X: {}\r\n", "a".repeat(60)).as_bytes());
    assert_eq!(run(&mut RequestParser::new(), &over, &limits).0, [Reply::HeaderTooLarge]);
    // As many fields as a header block may carry, then one more.
    let at_limit = with_trailers(&b"X: y\r\n".repeat(MAX_HEADERS));
    assert_eq!(replies(&at_limit), [Reply::Ok]);
    let over = with_trailers(&b"X: y\r\n".repeat(MAX_HEADERS + 1));
    assert_eq!(replies(&over), [Reply::HeaderTooLarge]);
}
