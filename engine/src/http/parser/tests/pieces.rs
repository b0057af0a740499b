//! Heads that arrive in pieces: parsed a bounded number of times, refused
//! at once, empty lines before them.

use super::*;

#[test]
fn a_head_sent_a_byte_at_a_time_is_parsed_a_bounded_number_of_times() {
    // 6 KB of head in eight fields, after two empty lines, one byte a read
    // (until 2026-12-05 each read parsed it again: 6000 parses of 18 MB).
    let mut head = b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for _ in 0..8 {
        head.extend_from_slice(format!("X-Fill: {}\r\n", "v".repeat(740)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() > 6000);
    let mut parser = RequestParser::new();
    let (mut got, mut start) = (None, 0);
    for end in 1..=head.len() {
        match step_past_empty_lines(&mut parser, &head[..end], &mut start, &LIMITS) {
            Step::NeedMore => {}
            step => {
                got = Some((end, step));
                break;
            }
        }
    }
    // The empty lines are no part of the head.
    let at_end = Step::Advance { consumed: head.len() - 3, reply: Some(Reply::Ok) };
    assert_eq!((got, start), (Some((head.len(), at_end)), 3));
    // The first read, the request line's end, the head's end.
    let (parses, bytes) = parser.parses;
    assert_eq!(parses, 3, "whole parses");
    assert!(bytes < 2 * head.len(), "{bytes} bytes parsed for {}", head.len());
    // A whole head in one read: parsed once.
    let mut parser = RequestParser::new();
    let step = step_past_empty_lines(&mut parser, &head, &mut 0, &LIMITS);
    assert!(matches!(step, Step::Advance { reply: Some(Reply::Ok), .. }));
    assert_eq!(parser.parses, (1, head.len() - 3));
}

#[test]
fn a_trickled_head_is_refused_at_the_limit_and_a_bad_line_at_its_end() {
    let limits = Limits { max_header: 64, max_body: 10 };
    let first_reply = |input: &[u8]| {
        let mut parser = RequestParser::new();
        (1..=input.len()).find_map(|end| match parser.step(&input[..end], &limits) {
            Step::Advance { reply, .. } => Some((end, reply)),
            Step::NeedMore => None,
        })
    };
    let long_uri = format!("GET /{}", "u".repeat(100));
    assert_eq!(first_reply(long_uri.as_bytes()), Some((64, Some(Reply::UriTooLong))));
    let long_field = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(100));
    assert_eq!(first_reply(long_field.as_bytes()), Some((64, Some(Reply::HeaderTooLarge))));
    // Bad bytes are refused when their line ends, request line or field line.
    let bad_line = b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(first_reply(bad_line), Some((19, Some(Reply::BadRequest))));
    let bad_field = b"GET / HTTP/1.1\r\nBad Field: x\r\nHost: a\r\n\r\n";
    assert_eq!(first_reply(bad_field), Some((30, Some(Reply::BadRequest))));
    // The same, all in one read: the line is judged once it is complete.
    assert_eq!(run(&mut RequestParser::new(), b"GET / HTTP/1.1\r\nBad Fi", &limits).0, []);
    // But a byte no line may hold is refused in the read that brings it
    // (a TLS client's hello starts with 0x16).
    assert_eq!(first_reply(b"\x16\x03\x01\x02\x00"), Some((1, Some(Reply::BadRequest))));
    assert_eq!(first_reply(b"GET /a\x7f"), Some((7, Some(Reply::BadRequest))));
    assert_eq!(run(&mut RequestParser::new(), b"GET / HTTP/1.1\r\nBad Fi\x01", &limits).0, [Reply::BadRequest]);
    assert_eq!(run(&mut RequestParser::new(), b"GET / HTTP/1.1\r\nBad Field: x\r\n", &limits).0, [Reply::BadRequest]);
}

#[test]
fn control_bytes_trickled_after_another_version_are_refused_at_once() {
    // `httparse` refuses the version at once, the request line is read
    // again by hand and waited on for its end: until 2026-12-05 every
    // read bringing a control byte parsed the head whole again (8,178
    // parses of 33 MB for an 8 KiB head, sent a byte a read).
    for line in [&b"GET / HTTP/1.2"[..], b"\r\nGET / HTTP/2.0", b"PRI * HTTP/2.0"] {
        let mut parser = RequestParser::new();
        let mut input = line.to_vec();
        let (mut got, mut start) = (None, 0);
        while got.is_none() && input.len() <= LIMITS.max_header {
            input.push(0x01);
            if let Step::Advance { reply, .. } = step_past_empty_lines(&mut parser, &input, &mut start, &LIMITS) {
                got = Some((input.len(), reply));
            }
        }
        let shown = String::from_utf8_lossy(line);
        assert_eq!(got, Some((line.len() + 1, Some(Reply::BadRequest))), "{shown:?}");
        assert_eq!(parser.parses.0, 1, "{shown:?}");
        // All in one read, the same.
        assert_eq!(replies(&input), [Reply::BadRequest], "{shown:?}");
    }
}

#[test]
fn leading_empty_lines_are_ignored() {
    assert_eq!(replies(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), [Reply::Ok]);
    // A step takes them alone, and begins no request.
    let mut parser = RequestParser::new();
    assert!(parser.only_empty_lines(b"\r\n\n\r"));
    assert!(!parser.only_empty_lines(b"\r\nG"));
    assert!(!parser.only_empty_lines(b"\r\r\n"), "a bare CR");
    assert_eq!(parser.step(b"\r\n\nGET", &LIMITS), Step::Advance { consumed: 3, reply: None });
    assert!(parser.between_requests());
}

/// Empty lines before a request line are no part of its head: a head of
/// `--max-header` bytes after them is served, one a byte longer refused,
/// however the input is cut. Until 2026-12-06 they counted with the head
/// the parser was given them with: `431` for one at the limit.
#[test]
fn empty_lines_before_a_head_count_toward_no_limit() {
    let limits = Limits { max_header: 64, max_body: 10 };
    let head = |len: usize| {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        head.resize(len - 4, b'v');
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    for lead in [&b"\r\n"[..], b"\n", b"\r\n\n\r\n"] {
        for (len, want) in [(64, Reply::Ok), (65, Reply::HeaderTooLarge)] {
            let input = [lead, &head(len)].concat();
            let shown = String::from_utf8_lossy(&input).into_owned();
            assert_eq!(run(&mut RequestParser::new(), &input, &limits).0, [want], "whole: {shown:?}");
            for cut in 1..input.len() {
                let mut sizes = [cut, usize::MAX].into_iter();
                let got = replies_fed_in(&input, &limits, || sizes.next().unwrap_or(usize::MAX));
                assert_eq!(got, [want], "cut at {cut}: {shown:?}");
            }
        }
    }
}
