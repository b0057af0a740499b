//! Any split of any stream gives the same replies and never panics.

use super::*;

#[test]
fn one_byte_at_a_time_yields_the_same_replies() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut parser = RequestParser::new();
    let mut pending = Vec::new();
    let mut got = Vec::new();
    for &byte in input.iter() {
        pending.push(byte);
        let (replies, left) = run(&mut parser, &pending, &LIMITS);
        got.extend(replies);
        pending.drain(..pending.len() - left);
    }
    assert_eq!(got, [Reply::Ok, Reply::Ok]);
    assert!(pending.is_empty());
}

/// The limits the split tests run under: small, so that requests at and
/// over them stay short.
const SPLIT_LIMITS: Limits = Limits { max_header: 256, max_body: 1000 };

/// Chunked requests whose framing around the data sits just inside or
/// just over [`SPLIT_LIMITS`], or is malformed, each with the replies it
/// gets when followed by a `GET`.
fn chunk_framing_cases() -> Vec<(Vec<u8>, Vec<Reply>)> {
    let chunked = |framing: &str| {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        format!("{head}{framing}GET / HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
    };
    let ok = vec![Reply::Ok, Reply::Ok];
    let extension = |bytes: usize| format!(";{}", "x".repeat(bytes - 1));
    vec![
        (chunked("5 ;a=b;q=\"x y\"\r\nhello\r\n0;last\r\nX-T: 1\r\nY:\tz\r\n\r\n"), ok.clone()),
        // Extensions of 999 bytes and one byte of data: max_body, then one over.
        (chunked(&format!("1{}\r\na\r\n0\r\n\r\n", extension(999))), ok.clone()),
        (chunked(&format!("1{}\r\na\r\n0\r\n\r\n", extension(1000))), vec![Reply::ContentTooLarge]),
        (chunked(&format!("0{}\r\n\r\n", extension(1001))), vec![Reply::ContentTooLarge]),
        // Trailer sections of 256 bytes (max_header), then 257.
        (chunked(&format!("0\r\nX: {}\r\n\r\n", "v".repeat(251))), ok.clone()),
        (chunked(&format!("0\r\nX: {}\r\n\r\n", "v".repeat(252))), vec![Reply::HeaderTooLarge]),
        // 64 trailer fields in 256 bytes, at both limits; then a 65th
        // field, refused at its first byte for the count.
        (chunked(&format!("0\r\n{}\r\n", "a:\r\n".repeat(64))), ok.clone()),
        (chunked(&format!("0\r\n{}\r\n", "a:\r\n".repeat(65))), vec![Reply::HeaderTooLarge]),
        (chunked("0\r\nNoColon\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("0\r\nBad Name: v\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("3;x\nabc\r\n0\r\n\r\n"), vec![Reply::BadRequest]),
        // Chunk-size lines outside RFC 9112 §7.1.1's grammar, and the ones in it.
        (chunked("5 \r\nhello\r\n0\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5;\r\nhello\r\n0\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5;a=\r\nhello\r\n0\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5;a=\"b\r\nhello\r\n0\r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5\r\nhello\r\n0 \r\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5;name\r\nhello\r\n0;name=value\r\n\r\n"), ok.clone()),
        // Leading zeros are no digits of the size; they count as framing.
        (chunked(&format!("{}5\r\nhello\r\n00\r\n\r\n", "0".repeat(20))), ok.clone()),
        (chunked(&format!("{}1\r\na\r\n0\r\n\r\n", "0".repeat(1001))), vec![Reply::ContentTooLarge]),
        (chunked("5 ;name=\"quoted \\\" ;\" ; b = c\r\nhello\r\n0\r\n\r\n"), ok.clone()),
        // Trailer lines and the final empty line end in CRLF only.
        (chunked("5\r\nhello\r\n0\r\nX: 1\n\r\n"), vec![Reply::BadRequest]),
        (chunked("5\r\nhello\r\n0\r\nX: 1\r\n\n"), vec![Reply::BadRequest]),
        (chunked("5\r\nhello\r\n0\r\n\n"), vec![Reply::BadRequest]),
    ]
}

/// A stream of requests, valid and not: every framing the parser knows,
/// some corrupted bytes, now and then pure garbage, and empty lines
/// before a request (or a bare CR). With it, when no byte was corrupted
/// and the empty lines it has came only where a request may begin, the
/// stream without them: RFC 9112 §2.2, they are ignored, so the
/// replies to both must be the same.
fn random_stream(rng: &mut Rng, framing_cases: &[(Vec<u8>, Vec<Reply>)]) -> (Vec<u8>, Option<Vec<u8>>) {
    const PIECES: [&[u8]; 14] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"\x00\xff garbage \r\n\r\n",
    ];
    const EMPTY_LINES: [&[u8]; 5] = [b"\r\n", b"\n", b"\r\n\r\n", b"\n\r\n", b"\r"];
    let (mut stream, mut without_empty_lines) = (Vec::new(), Some(Vec::new()));
    // Every piece so far ends where a request may begin.
    let mut at_a_request = true;
    for _ in 0..1 + rng.below(6) {
        if rng.below(3) == 0 {
            let lines = EMPTY_LINES[rng.below(EMPTY_LINES.len())];
            stream.extend_from_slice(lines);
            if !at_a_request || lines == b"\r" {
                without_empty_lines = None;
            }
        }
        // One piece in four is chunked framing at or over a limit, one in
        // five a head around `--max-header`.
        let piece = match rng.below(20) {
            0..=4 => framing_cases[rng.below(framing_cases.len())].0.clone(),
            5..=8 => {
                let (head, ended) = head_around_the_limit(rng);
                at_a_request &= ended;
                head
            }
            _ => PIECES[rng.below(PIECES.len())].to_vec(),
        };
        stream.extend_from_slice(&piece);
        if let Some(plain) = &mut without_empty_lines {
            plain.extend_from_slice(&piece);
        }
    }
    // Corrupt a few bytes now and then.
    for _ in 0..rng.below(3) {
        if !stream.is_empty() {
            let at = rng.below(stream.len());
            stream[at] = rng.next() as u8;
            without_empty_lines = None;
        }
    }
    (stream, without_empty_lines)
}

/// A head of about [`SPLIT_LIMITS`]' `max_header` bytes, under or over
/// it: field lines of random lengths, now and then a malformed line (or
/// one with a byte no line may hold) wherever it falls, before the limit,
/// across it or after it; now and then a request line that runs past the
/// limit or names another version; now and then no end.
fn head_around_the_limit(rng: &mut Rng) -> (Vec<u8>, bool) {
    const BAD_LINES: [&[u8]; 5] =
        [b"Bad Field: x\r\n", b"NoColon\r\n", b"X: a\x01b\r\n", b"X\x7fY: z\r\n", b"X: y\rZ\r\n"];
    let max = SPLIT_LIMITS.max_header;
    let request_line = match rng.below(6) {
        0 => format!("GET /{} HTTP/1.1\r\n", "u".repeat(max - 30 + rng.below(60))),
        1 => "GET / HTTP/2.0\r\n".to_string(),
        _ => "GET / HTTP/1.1\r\n".to_string(),
    };
    let mut lines = vec![b"Host: a\r\n".to_vec()];
    let length = max - 60 + rng.below(160);
    let mut filled = request_line.len() + lines[0].len();
    while filled < length {
        let line = format!("X-{}: {}\r\n", rng.below(100), "v".repeat(rng.below(60)));
        filled += line.len();
        lines.push(line.into_bytes());
    }
    if rng.below(2) == 0 {
        let bad = BAD_LINES[rng.below(BAD_LINES.len())].to_vec();
        lines.insert(rng.below(lines.len() + 1), bad);
    }
    let mut head = request_line.into_bytes();
    head.extend(lines.concat());
    let ended = rng.below(4) != 0;
    if ended {
        head.extend_from_slice(b"\r\n");
    }
    (head, ended)
}

#[test]
fn any_split_of_any_stream_gives_the_same_replies_and_never_panics() {
    let framing_cases = chunk_framing_cases();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut compared, mut with_empty_lines) = (0, 0);
    for case in 0..3000 {
        let (stream, without_empty_lines) = random_stream(&mut rng, &framing_cases);
        let shown = String::from_utf8_lossy(&stream).into_owned();
        let whole = run(&mut RequestParser::new(), &stream, &SPLIT_LIMITS).0;
        if let Some(plain) = without_empty_lines.filter(|plain| plain.len() < stream.len()) {
            let replies = run(&mut RequestParser::new(), &plain, &SPLIT_LIMITS).0;
            assert_eq!(whole, replies, "case {case}, with empty lines and without: {shown:?}");
            with_empty_lines += 1;
        }
        let byte_by_byte = replies_fed_in(&stream, &SPLIT_LIMITS, || 1);
        assert_eq!(whole, byte_by_byte, "case {case}, byte by byte: {shown:?}");
        // Small reads, and reads about as long as the limit (one crossing it).
        let most = [40, SPLIT_LIMITS.max_header + 40][rng.below(2)];
        let split = replies_fed_in(&stream, &SPLIT_LIMITS, || 1 + rng.below(most));
        assert_eq!(whole, split, "case {case}, reads of up to {most} bytes: {shown:?}");
        compared += whole.len();
    }
    // The generator must produce real traffic, not only empty streams.
    assert!(compared > 4000, "only {compared} replies compared");
    assert!(with_empty_lines > 300, "only {with_empty_lines} streams compared to themselves without empty lines");
}

#[test]
fn every_split_inside_extensions_and_trailers_gives_the_same_replies() {
    for (stream, want) in chunk_framing_cases() {
        let shown = String::from_utf8_lossy(&stream).into_owned();
        assert_eq!(run(&mut RequestParser::new(), &stream, &SPLIT_LIMITS).0, want, "whole: {shown:?}");
        assert_eq!(replies_fed_in(&stream, &SPLIT_LIMITS, || 1), want, "byte by byte: {shown:?}");
        for cut in 1..stream.len() {
            let mut sizes = [cut, usize::MAX].into_iter();
            let got = replies_fed_in(&stream, &SPLIT_LIMITS, || sizes.next().unwrap_or(usize::MAX));
            assert_eq!(got, want, "cut at {cut}: {shown:?}");
        }
    }
}

#[test]
fn a_head_over_the_limit_is_judged_by_its_first_max_header_bytes_however_it_is_cut() {
    // Until 2026-12-05 the bytes past the limit counted when they came
    // in the read that reached it: a bad line after the limit got `400`
    // sent whole and `431` sent in pieces.
    let limits = Limits { max_header: 64, max_body: 10 };
    let base = "GET / HTTP/1.1\r\nHost: a\r\n";
    let field = |values: usize| format!("X: {}\r\n", "v".repeat(values));
    let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let cases = [
        // A bad line wholly past the limit, the head complete or not.
        (format!("{base}{}Bad Field: x\r\n\r\n", field(40)), vec![Reply::HeaderTooLarge]),
        (format!("{base}{}Bad Field: x\r\n", field(40)), vec![Reply::HeaderTooLarge]),
        // A bad line wholly within it.
        (format!("{base}Bad Field: x\r\n{}\r\n", field(40)), vec![Reply::BadRequest]),
        // A bad line across it: its bad byte (the space) before the limit, then after.
        (format!("{base}{}Bad Field-{}: x\r\n\r\n", field(20), "y".repeat(20)), vec![Reply::BadRequest]),
        (format!("{base}{}Long-Name-{} Bad: x\r\n\r\n", field(20), "n".repeat(10)), vec![Reply::HeaderTooLarge]),
        // A byte no line may hold, past the limit.
        (format!("{base}X: {}\x01\r\n\r\n", "v".repeat(40)), vec![Reply::HeaderTooLarge]),
        // A request line that runs past the limit: what follows it is not read.
        (format!("GET /{} HTTP/1.1\r\nBad Field: x\r\n\r\n", "u".repeat(70)), vec![Reply::UriTooLong]),
        (format!("GET /{} HTTP/2.0\r\n\r\n", "u".repeat(70)), vec![Reply::UriTooLong]),
        // A head of exactly the limit, then one byte over.
        (format!("{base}{}\r\n{get}", field(32)), vec![Reply::Ok, Reply::Ok]),
        (format!("{base}{}\r\n{get}", field(33)), vec![Reply::HeaderTooLarge]),
    ];
    for (input, want) in cases {
        let input = input.as_bytes();
        let shown = String::from_utf8_lossy(input).into_owned();
        assert_eq!(run(&mut RequestParser::new(), input, &limits).0, want, "whole: {shown:?}");
        assert_eq!(replies_fed_in(input, &limits, || 1), want, "byte by byte: {shown:?}");
        for cut in 1..input.len() {
            let mut sizes = [cut, usize::MAX].into_iter();
            let got = replies_fed_in(input, &limits, || sizes.next().unwrap_or(usize::MAX));
            assert_eq!(got, want, "cut at {cut}: {shown:?}");
        }
    }
}
