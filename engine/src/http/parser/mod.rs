//! The request state machine: header block with `httparse`, then the body
//! (by `Content-Length` or `chunked`), handed on or discarded.
//!
//! A complete header block is judged in `parser/decide.rs`, from its fields
//! as `parser/fields.rs` reads them, its body's framing decided in
//! `parser/framing.rs`.

mod decide;
mod fields;
mod framing;

use self::decide::{begins_with_head_method, decide_head, parse_head, HeadResult};
use self::framing::Framing;
use super::chunked::{ChunkedBody, ChunkedProgress};
use super::head::Parsed;
use super::limits::Limits;
use super::pieces::{complete_lines, empty_lines_ahead, never_in_a_head, HeadProgress, Look};
use super::Reply;

/// What one call to [`RequestParser::step`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The first `consumed` bytes belong to the request; `reply` is due now.
    Advance {
        /// Bytes of the input used.
        consumed: usize,
        /// The reply to queue, if the request (or its `100 Continue`) is due.
        reply: Option<Reply>,
    },
    /// The header block is incomplete: keep the input and call again with
    /// it extended (the parser remembers how far it looked).
    NeedMore,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Headers(HeadProgress),
    /// Before a head: the empty lines skipped last ended in a `\r`, whose
    /// `\n` must come first.
    CrDue,
    Body {
        remaining: u64,
        reply: Reply,
    },
    Chunked {
        body: ChunkedBody,
        reply: Reply,
    },
}

/// One connection's request parser: a few words of state, no buffers.
#[derive(Clone, Copy, Debug)]
pub struct RequestParser {
    state: State,
    /// The request whose head was parsed last is a `HEAD`.
    head: bool,
    /// Whole parses of a head so far, and the bytes they were given.
    #[cfg(test)]
    parses: (usize, usize),
}

impl RequestParser {
    /// A parser waiting for the first request.
    pub const fn new() -> Self {
        RequestParser {
            state: State::Headers(HeadProgress::new()),
            head: false,
            #[cfg(test)]
            parses: (0, 0),
        }
    }

    /// The request being answered (the one whose header block was parsed
    /// or refused last) is a `HEAD`: no response to it may carry content,
    /// an error's included (RFC 9110 §9.3.2). A refused head's method is
    /// read from the start of its request line (as nginx does), so a head
    /// refused before it is complete (`414`, `431`) or that does not parse
    /// is judged by its own method, never by the request before it.
    pub fn answering_head(&self) -> bool {
        self.head
    }

    /// True between requests: no body is being read.
    pub fn between_requests(&self) -> bool {
        matches!(self.state, State::Headers(_) | State::CrDue)
    }

    /// `input` is nothing but empty lines before a request line (RFC 9112
    /// §2.2), ending perhaps in a `\r` whose `\n` is still to come: a step
    /// takes all of it and begins no request.
    pub fn only_empty_lines(&self, input: &[u8]) -> bool {
        let cr_due = match &self.state {
            State::Headers(progress) if progress.at_start() && matches!(input.first(), Some(b'\r' | b'\n')) => false,
            State::CrDue if !input.is_empty() => true,
            _ => return false,
        };
        empty_lines_ahead(input, cr_due) == Some(input.len())
    }

    /// The length of the body being read by `Content-Length`, still to come.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Body { remaining, .. } => Some(remaining),
            _ => None,
        }
    }

    /// Feeds the unconsumed input; call again with what is left after `consumed`.
    pub fn step(&mut self, input: &[u8], limits: &Limits) -> Step {
        self.step_with(input, limits, &mut |_| {})
    }

    /// [`RequestParser::step`], handing the body's bytes (without chunked
    /// framing) to `on_body` as they are consumed.
    pub fn step_with(&mut self, input: &[u8], limits: &Limits, on_body: &mut impl FnMut(&[u8])) -> Step {
        match &mut self.state {
            State::Headers(progress) => match progress.look(input, limits.max_header) {
                Look::Wait => Step::NeedMore,
                Look::EmptyLines => self.skip_empty_lines(input, false),
                look => self.head_step(input, limits, look),
            },
            State::Body { remaining, reply } => {
                let take = (input.len() as u64).min(*remaining);
                *remaining -= take;
                let consumed = take as usize;
                on_body(&input[..consumed]);
                if *remaining > 0 {
                    return Step::Advance { consumed, reply: None };
                }
                let reply = *reply;
                self.state = State::Headers(HeadProgress::new());
                Step::Advance { consumed, reply: Some(reply) }
            }
            State::Chunked { body, reply } => match body.feed_with(input, limits, on_body) {
                ChunkedProgress::More => Step::Advance { consumed: input.len(), reply: None },
                ChunkedProgress::Done { consumed } => {
                    let reply = *reply;
                    self.state = State::Headers(HeadProgress::new());
                    Step::Advance { consumed, reply: Some(reply) }
                }
                ChunkedProgress::Invalid => Step::Advance { consumed: input.len(), reply: Some(Reply::BadRequest) },
                ChunkedProgress::BodyTooLarge => {
                    Step::Advance { consumed: input.len(), reply: Some(Reply::ContentTooLarge) }
                }
                ChunkedProgress::TrailersTooLarge => {
                    Step::Advance { consumed: input.len(), reply: Some(Reply::HeaderTooLarge) }
                }
            },
            State::CrDue if input.is_empty() => Step::NeedMore,
            State::CrDue => self.skip_empty_lines(input, true),
        }
    }

    /// Empty lines before a request line are ignored (RFC 9112 §2.2; some
    /// clients send one after a body), here, wherever they arrive: they
    /// are no part of the head (nor of the `--max-header` it is held to),
    /// and a step that takes only them begins no request. Until 2026-12-06
    /// the worker dropped a read of nothing else, and the parser took those
    /// in the read of a head for part of it: an 8192-byte head after one
    /// got `431` in that read and `200` after it, and the health path was
    /// not told after one (its head did not start with `GET `).
    ///
    /// `input` is not empty; `cr_due`: the empty lines skipped before it
    /// ended in a `\r`.
    #[cold]
    fn skip_empty_lines(&mut self, input: &[u8], cr_due: bool) -> Step {
        match empty_lines_ahead(input, cr_due) {
            Some(consumed) => {
                // A `\r` skipped last is one whose `\n` has not come (a pair ends in `\n`).
                let cr_due = consumed.checked_sub(1).is_some_and(|last| input[last] == b'\r');
                self.state = if cr_due { State::CrDue } else { State::Headers(HeadProgress::new()) };
                Step::Advance { consumed, reply: None }
            }
            None => {
                // A bare CR: malformed, refused at the byte after it however
                // the input is cut (`httparse` refuses it in a whole head).
                self.state = State::Headers(HeadProgress::new());
                self.head = false;
                Step::Advance { consumed: input.len(), reply: Some(Reply::BadRequest) }
            }
        }
    }

    /// A head's read that calls for a parse (or found a bad line).
    fn head_step(&mut self, input: &[u8], limits: &Limits, look: Look) -> Step {
        let result = match look {
            Look::Whole => self.parse_whole(input, limits),
            Look::Refusable => self.parse(input, limits),
            Look::Lines(end) => self.parse_lines(input, end, limits),
            Look::Invalid(e) => {
                self.head = begins_with_head_method(input);
                decide_head(input, limits, Parsed::Invalid(e))
            }
            Look::Wait | Look::EmptyLines => HeadResult::NeedMore,
        };
        if !matches!(result, HeadResult::NeedMore) {
            // Decided: the next head starts afresh.
            self.state = State::Headers(HeadProgress::new());
        }
        match result {
            HeadResult::NeedMore => Step::NeedMore,
            HeadResult::Reject(reply) => Step::Advance { consumed: input.len(), reply: Some(reply) },
            HeadResult::Request { len, framing, reply, expect_continue } => {
                let body_follows = match framing {
                    Framing::None => false,
                    Framing::Length(remaining) => {
                        self.state = State::Body { remaining, reply };
                        true
                    }
                    Framing::Chunked => {
                        self.state = State::Chunked { body: ChunkedBody::new(), reply };
                        true
                    }
                };
                let reply = match (body_follows, expect_continue) {
                    (false, _) => Some(reply),
                    (true, true) => Some(Reply::Continue),
                    (true, false) => None,
                };
                Step::Advance { consumed: len, reply }
            }
        }
    }

    /// The head's first read (all of it, commonly), or a head at the limit:
    /// parsed whole, as it always was.
    ///
    /// A head at `--max-header` is judged by its first `--max-header` bytes
    /// alone, as a server whose header buffer is that large sees it (nginx
    /// answers a bad line it has read `400`, and a buffer that fills first
    /// "too large"): a malformed line there, or too many fields, gets `400`
    /// (`431`); a head that does not end there gets `414` or `431`; what
    /// comes after the limit is never looked at. How many bytes the read
    /// that reached the limit brought past it then does not matter: until
    /// 2026-12-05 they were parsed too, and a bad line after the limit got
    /// `400` in one read but `431` in pieces.
    fn parse_whole(&mut self, input: &[u8], limits: &Limits) -> HeadResult {
        if input.len() >= limits.max_header {
            return self.parse(&input[..limits.max_header], limits);
        }
        let before = self.head;
        let result = self.parse(input, limits);
        let refused = matches!(result, HeadResult::Reject(_));
        if refused && !input.ends_with(b"\n") && !input.iter().any(|&b| never_in_a_head(b)) {
            // Refused below the limit, perhaps for a line still incomplete:
            // that is judged when the line ends, as when it comes in pieces.
            self.head = before;
            return self.parse_lines(input, complete_lines(input), limits);
        }
        result
    }

    /// The head's first `end` bytes, its complete lines, parsed whole.
    #[cold]
    fn parse_lines(&mut self, input: &[u8], end: usize, limits: &Limits) -> HeadResult {
        let result = self.parse(&input[..end], limits);
        if let (HeadResult::NeedMore, State::Headers(progress)) = (&result, &mut self.state) {
            progress.lines_valid(input, end);
        }
        result
    }

    fn parse(&mut self, input: &[u8], limits: &Limits) -> HeadResult {
        #[cfg(test)]
        {
            self.parses.0 += 1;
            self.parses.1 += input.len();
        }
        parse_head(input, limits, &mut self.head)
    }
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
