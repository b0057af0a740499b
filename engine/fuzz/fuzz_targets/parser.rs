//! The request parser fed a stream whole and cut at arbitrary points (the
//! unparsed rest kept and offered again, extended, as the connection does):
//! no panic, every step consumes within its input, and the same replies
//! with the same bodies whatever the cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_engine::http::{Limits, Reply, RequestParser, Step};

/// Replies in order, with the body bytes handed on before each.
fn run(input: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<(Reply, Vec<u8>)>, usize) {
    let mut parser = RequestParser::new();
    let mut out = Vec::new();
    let mut body = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    // Consumed so far; the buffer is input[used..end].
    let mut used = 0;
    let mut idle_steps = 0;
    for end in bounds {
        loop {
            if used == end {
                break;
            }
            let buffer = &input[used..end];
            match parser.step_with(buffer, limits, &mut |d| body.extend_from_slice(d)) {
                Step::NeedMore => break,
                Step::Advance { consumed, reply } => {
                    assert!(consumed <= buffer.len(), "consumed {consumed} of {}", buffer.len());
                    used += consumed;
                    // Steps that neither consume nor reply would spin a connection for ever.
                    idle_steps = if consumed == 0 && reply.is_none() { idle_steps + 1 } else { 0 };
                    assert!(idle_steps < 3, "no progress on {} bytes", buffer.len());
                    if let Some(reply) = reply {
                        out.push((reply, std::mem::take(&mut body)));
                        if reply.closes() {
                            return (out, used);
                        }
                    }
                }
            }
        }
    }
    (out, used)
}

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() < 2 {
        return;
    }
    let limits = Limits {
        max_header: [64, 300, 1024, 8192][usize::from(bytes[0] & 3)],
        max_body: [0, 10, 1000, 1 << 20][usize::from((bytes[0] >> 2) & 3)],
    };
    let count = usize::from(bytes[1] & 15).min(bytes.len() - 2);
    let cuts: Vec<usize> = bytes[2..2 + count].iter().map(|&c| usize::from(c) * 3).collect();
    let input = &bytes[2 + count..];
    let whole = run(input, &[], &limits);
    let split = run(input, &cuts, &limits);
    assert_eq!(split.0, whole.0, "replies split at {cuts:?} vs whole");
    let bytewise: Vec<usize> = (1..input.len().min(64)).collect();
    let by_byte = run(input, &bytewise, &limits);
    assert_eq!(by_byte.0, whole.0, "replies fed a byte at a time (first 64) vs whole");
});
