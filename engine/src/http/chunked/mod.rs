//! A streaming decoder that walks a `chunked` body (RFC 9112 §7.1) byte by
//! byte and discards it, so a chunk header split across reads needs no
//! buffering; the framing around the data is bounded and checked as it comes.
//!
//! This file: the decoder and what it answers, data taken in bulk;
//! `state.rs`: where in the framing it stands; `step.rs`: one byte of
//! framing (size line, data's end, trailer section) judged and counted
//! against the limits; `extension.rs`: the grammar of a chunk-size line's
//! extensions.

mod extension;
mod state;
mod step;
#[cfg(test)]
mod tests;

use self::state::State;
use super::limits::Limits;

/// Where a chunked body stands after feeding it some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedProgress {
    /// All input consumed, the body goes on.
    More,
    /// The body (with its trailers) ended after `consumed` bytes.
    Done {
        /// Bytes of the input that belonged to the body.
        consumed: usize,
    },
    /// The framing is malformed: a chunk-size line outside the grammar, a
    /// line end other than CRLF anywhere (chunk lines, after chunk data,
    /// trailer lines, the final empty line), or a trailer line that is not a
    /// field.
    Invalid,
    /// Chunk data and chunk extensions add up to more than `max_body`.
    BodyTooLarge,
    /// The trailer section is over `max_header` bytes or `MAX_HEADERS` fields.
    TrailersTooLarge,
}

/// The state of one chunked body being discarded.
#[derive(Clone, Copy, Debug)]
pub struct ChunkedBody {
    state: State,
    /// Size of the chunk being read, or bytes of it still to skip in `Data`.
    size: u64,
    digits: u8,
    /// Body bytes so far: the sizes of the chunks begun and every byte of
    /// their extensions (a client must not send unbounded framing for free).
    body_bytes: u64,
    /// Bytes of the trailer section so far: its field lines, line ends included.
    trailer_bytes: usize,
    /// Trailer field lines begun so far.
    trailer_fields: usize,
}

impl ChunkedBody {
    /// A body that has not started yet.
    pub fn new() -> Self {
        ChunkedBody { state: State::SizeStart, size: 0, digits: 0, body_bytes: 0, trailer_bytes: 0, trailer_fields: 0 }
    }

    /// Consumes `input` as body bytes, refusing a body (chunk data and
    /// extensions) over `limits.max_body` bytes, and a trailer section over
    /// `limits.max_header` bytes or `MAX_HEADERS` fields, as soon as it is over.
    pub fn feed(&mut self, input: &[u8], limits: &Limits) -> ChunkedProgress {
        self.feed_with(input, limits, &mut |_| {})
    }

    /// [`ChunkedBody::feed`], handing each run of chunk data to `on_data`
    /// (the body without its framing, in order).
    pub fn feed_with(&mut self, input: &[u8], limits: &Limits, on_data: &mut impl FnMut(&[u8])) -> ChunkedProgress {
        let mut at = 0;
        while at < input.len() {
            if self.state == State::Data {
                let take = (input.len() - at).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                on_data(&input[at..at + take]);
                at += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[at];
            at += 1;
            match self.step(byte, limits) {
                Ok(true) => return ChunkedProgress::Done { consumed: at },
                Ok(false) => {}
                Err(progress) => return progress,
            }
        }
        ChunkedProgress::More
    }
}

impl Default for ChunkedBody {
    fn default() -> Self {
        Self::new()
    }
}
