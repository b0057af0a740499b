//! Any split of the input and the sends gives the same bytes out.

use super::*;

/// Feeds `input` in pieces cut at `cuts`, sending whatever is due after each
/// piece, sometimes in part; returns what went out.
fn run_split(input: &[u8], rng: &mut Rng, whole: bool, make: fn() -> Harness) -> Vec<u8> {
    let mut h = make();
    let mut at = 0;
    while at < input.len() && !h.conn.is_closed() {
        let len = if whole { input.len() } else { 1 + rng.below(40) };
        let end = (at + len).min(input.len());
        if h.conn.wants_read() || h.conn.phase() == Phase::Paused {
            if h.conn.phase() == Phase::Paused {
                h.flush();
                continue;
            }
            at += h.input(&input[at..end]);
        }
        while let Some(bytes) = h.start_send() {
            let n = if whole { bytes.len() } else { 1 + rng.below(bytes.len()) };
            h.complete(&bytes, n);
        }
    }
    h.flush();
    h.sent
}

/// Random request streams, each fed whole and in random pieces with random
/// partial sends, must give the same bytes out; and the same as the stream
/// without the empty lines it has before its requests now and then (RFC
/// 9112 §2.2: ignored, wherever they come), heads of `--max-header` bytes
/// and the health path among them.
fn splits_give_the_same_bytes(make: fn() -> Harness) {
    let at_the_limit = head_of(8192);
    let over_the_limit = head_of(8193);
    let pieces: [&[u8]; 8] = [
        GET,
        b"PUT /x HTTP/1.2\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        &at_the_limit,
    ];
    let endings: [&[u8]; 6] = [
        b"",
        GET_CLOSE,
        BAD,
        &over_the_limit,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    let empty_lines: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\n\r\n", b"\n\r\n"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let (mut stream, mut without_empty_lines) = (Vec::new(), Vec::new());
        let count = 1 + rng.below(30);
        for n in 0..=count {
            if rng.below(3) == 0 {
                stream.extend_from_slice(empty_lines[rng.below(empty_lines.len())]);
            }
            let piece = if n < count { pieces[rng.below(pieces.len())] } else { endings[rng.below(endings.len())] };
            stream.extend_from_slice(piece);
            without_empty_lines.extend_from_slice(piece);
        }
        let expected = run_split(&stream, &mut rng, true, make);
        let got = run_split(&stream, &mut rng, false, make);
        compare_outputs(round, "whole", &expected, "split", &got);
        let plain = run_split(&without_empty_lines, &mut rng, true, make);
        compare_outputs(round, "without empty lines", &plain, "with", &expected);
    }
}

fn compare_outputs(round: usize, expected_name: &str, expected: &[u8], got_name: &str, got: &[u8]) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
        let show = |v: &[u8]| String::from_utf8_lossy(&v[at.saturating_sub(200)..(at + 200).min(v.len())]).into_owned();
        panic!(
            "round {round}: output differs at byte {at} ({} vs {} bytes):\n{expected_name}: {}\n{got_name}: {}",
            expected.len(),
            got.len(),
            show(expected),
            show(got)
        );
    }
}

#[test]
fn any_split_of_the_input_and_the_sends_gives_the_same_bytes_out() {
    splits_give_the_same_bytes(Harness::new);
}

#[test]
fn any_split_gives_the_same_bytes_out_with_a_handler_too() {
    splits_give_the_same_bytes(|| Harness::with_handler(4, 256));
}
