//! The request parser fed by hand, whole and in every split.

mod framing;
mod heads;
mod pieces;
mod splits;

use super::*;
use crate::http::MAX_HEADERS;
use crate::test_rng::Rng;

const LIMITS: Limits = Limits { max_header: 8192, max_body: 1 << 20 };

/// Feeds `input` whole and returns the replies and the bytes left unparsed.
fn run(parser: &mut RequestParser, input: &[u8], limits: &Limits) -> (Vec<Reply>, usize) {
    let mut replies = Vec::new();
    let mut at = 0;
    while at < input.len() {
        match parser.step(&input[at..], limits) {
            Step::NeedMore => break,
            Step::Advance { consumed, reply } => {
                at += consumed;
                if let Some(reply) = reply {
                    replies.push(reply);
                    if reply.closes() {
                        break;
                    }
                }
            }
        }
    }
    (replies, input.len() - at)
}

fn replies(input: &[u8]) -> Vec<Reply> {
    run(&mut RequestParser::new(), input, &LIMITS).0
}

/// Feeds `stream` in pieces of `sizes` (the last one takes what is left),
/// keeping the unparsed tail as the worker's carry buffer does; stops at a
/// closing reply.
fn replies_fed_in(stream: &[u8], limits: &Limits, mut sizes: impl FnMut() -> usize) -> Vec<Reply> {
    let mut parser = RequestParser::new();
    let mut pending = Vec::new();
    let mut got = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let take = sizes().clamp(1, stream.len() - at);
        pending.extend_from_slice(&stream[at..at + take]);
        at += take;
        let (replies, left) = run(&mut parser, &pending, limits);
        let closed = replies.last().is_some_and(|r| r.closes());
        got.extend(replies);
        if closed {
            break;
        }
        pending.drain(..pending.len() - left);
    }
    got
}

/// Steps through a read, `input` from `*start`, as the worker does: past
/// the empty lines before a head (`*start` moves past them), to the
/// first step that is not that.
fn step_past_empty_lines(parser: &mut RequestParser, input: &[u8], start: &mut usize, limits: &Limits) -> Step {
    while *start < input.len() {
        match parser.step(&input[*start..], limits) {
            // Between requests, bytes taken with no reply are empty lines.
            Step::Advance { consumed, reply: None } if parser.between_requests() => *start += consumed,
            step => return step,
        }
    }
    Step::NeedMore
}
