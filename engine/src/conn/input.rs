//! Input: bytes received, parsed straight from the receive buffer or held
//! in the carry buffer (an incomplete header block, or input held while
//! paused), or discarded after a closing answer.

use super::{Connection, Context, Phase};

impl Connection {
    /// Bytes arrived; `carry` is this connection's carry buffer and
    /// `more_waiting` says the socket already holds more. Returns the bytes
    /// taken: fewer than `data` only while paused with the carry buffer full
    /// (the driver holds the rest and offers it again after the next send).
    pub fn handle_input(&mut self, data: &[u8], carry: &mut [u8], more_waiting: bool, ctx: &mut Context<'_>) -> usize {
        let between = self.phase == Phase::Reading && self.carry_len == 0 && self.parser.between_requests();
        if between && self.parser.only_empty_lines(data) {
            // Empty lines before a request line, which the parser skips
            // wherever they come (RFC 9112 §2.2): a read of nothing else
            // begins no request, so it starts no header clock, holds no
            // drain and refreshes nothing. A client sending only them is cut
            // off by the timer that runs: `--header-timeout` from the
            // connection's start before its first request, `--idle-timeout`
            // from the last answer after one.
            self.parser.step(data, &ctx.limits);
            self.unanswered_input = true;
            return data.len();
        }
        if let Phase::Finishing { .. } = self.phase {
            // Discarded, it is no sign of a reader: the deadline stays the
            // one the answer's sends set, or a client that reads nothing of a
            // large answer would hold the connection for as long as it
            // trickled bytes.
            self.discard_after_closing_reply();
            self.settle_until = None;
            return data.len();
        }
        let writing = self.writing();
        let mut rest = data;
        while !rest.is_empty() {
            match self.phase {
                Phase::Finishing { .. } => {
                    // A closing reply parsed from the carry: the rest goes as
                    // input after it does (above).
                    self.discard_after_closing_reply();
                    rest = &[];
                }
                Phase::Lingering => {
                    self.unanswered_input = true;
                    self.extend_linger(ctx);
                    rest = &[];
                }
                Phase::Closed => rest = &[],
                Phase::Reading if self.carry_len == 0 => {
                    // The common case: parse straight from the receive buffer.
                    let used = self.feed(rest, ctx);
                    rest = &rest[used..];
                    if rest.is_empty() || !matches!(self.phase, Phase::Reading | Phase::Paused) {
                        rest = &[];
                        continue;
                    }
                    // An incomplete header block, or input held while replies drain.
                    let keep = rest.len().min(carry.len());
                    carry[..keep].copy_from_slice(&rest[..keep]);
                    self.carry_len = keep;
                    self.carry_touched = self.carry_touched.max(keep);
                    rest = &rest[keep..];
                    if !rest.is_empty() {
                        // Paused with more than the carry holds: the rest waits.
                        break;
                    }
                }
                Phase::Reading | Phase::Paused => {
                    let room = carry.len() - self.carry_len;
                    if room == 0 {
                        // Paused with the carry full (a header block cannot
                        // fill it: the parser refuses it at --max-header).
                        break;
                    }
                    let take = room.min(rest.len());
                    carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
                    self.carry_len += take;
                    self.carry_touched = self.carry_touched.max(self.carry_len);
                    rest = &rest[take..];
                    if self.phase == Phase::Reading {
                        self.parse_carry(carry, ctx);
                    }
                }
            }
        }
        self.settle_until = None;
        if !more_waiting && rest.is_empty() {
            self.settle_if_draining(ctx);
        }
        if writing && self.writing() {
            // Queued behind answers it has not read: the writer's clock runs
            // on, and its deadline asks whether the client reads (`ReaderWatch`).
            self.reader.armed = true;
            self.reader.input_since_look = true;
            return data.len() - rest.len();
        }
        self.after_progress(ctx);
        data.len() - rest.len()
    }

    /// Bytes of input the connection can take now without parsing any: the
    /// carry buffer's free room (a driver reading into a shared buffer reads
    /// no more than this, so nothing it reads ever has to wait elsewhere).
    pub fn input_room(&self, carry_capacity: usize) -> usize {
        carry_capacity - self.carry_len
    }

    /// Parses what the carry buffer holds and keeps the unparsed tail.
    pub(super) fn parse_carry(&mut self, carry: &mut [u8], ctx: &mut Context<'_>) {
        let held = self.carry_len;
        let used = self.feed(&carry[..held], ctx);
        if matches!(self.phase, Phase::Finishing { .. }) {
            self.carry_len = 0;
            return;
        }
        carry.copy_within(used..held, 0);
        self.carry_len = held - used;
    }

    /// Input after a closing reply is discarded; closing with it unread
    /// would reset the connection, so the close waits for the client's FIN.
    fn discard_after_closing_reply(&mut self) {
        self.phase = Phase::Finishing { linger: true };
        self.unanswered_input = true;
    }
}
