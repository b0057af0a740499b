//! Requests parsed from input and answered: a preformatted page queued,
//! or the handler's framed response written to the output buffer.

use super::assembly::Assembly;
use super::health::is_health_check;
use super::{Connection, Context, Phase};
use crate::answer::{answer, Answering, Framing};
use crate::http::{Reply, Step};

/// Bytes of preformatted answers a connection may owe before it stops
/// reading. The run-length queue holds any number of identical answers in
/// one entry, so without a bound a client that pipelines and never reads
/// had the worker read and parse for as long as it sent (hundreds of MB/s
/// on one core), owing more than the socket would ever take, its connection
/// never idle, and a run's count could wrap. Far above what a client that
/// reads its answers keeps owed (16-deep pipelining owes a few KiB).
pub const OWED_BYTES: usize = 256 * 1024;

impl Connection {
    /// Parses requests from `input` into the reply queue; returns the bytes
    /// used. Stops at an incomplete header block, a closing reply (then all
    /// of `input` counts as used: the rest is discarded) or a full queue or
    /// output buffer (then the connection pauses).
    pub(super) fn feed(&mut self, input: &[u8], ctx: &mut Context<'_>) -> usize {
        let mut at = 0;
        // A head whose whole body is in `input` too: answered from it, no copy.
        let mut in_place: Option<(usize, usize)> = None;
        while at < input.len() {
            let between = self.parser.between_requests();
            // Pause only between requests, with room for a request's replies
            // (`100 Continue` and its answer) and its framed response kept:
            // a request once begun is never left half-parsed for lack of room.
            if between && (!self.replies.has_room_for(2) || !self.has_room_to_answer(ctx)) {
                self.phase = Phase::Paused;
                break;
            }
            let start = at;
            let step = match &mut ctx.answering {
                Answering::Dynamic(dynamic) if self.assembly != Assembly::Idle => {
                    let (assembly, bodies) = (&mut self.assembly, &mut *dynamic.bodies);
                    self.parser.step_with(&input[at..], &ctx.limits, &mut |data| assembly.append(data, bodies))
                }
                _ => self.parser.step(&input[at..], &ctx.limits),
            };
            let Step::Advance { consumed, reply } = step else { break };
            at += consumed;
            if !between {
                self.body_bytes += consumed as u64;
            } else if !self.parser.between_requests() {
                self.body_started = ctx.now;
                self.body_bytes = 0;
                // A probe of the health path is one with a body too; the
                // handler never sees it, so its body is not kept.
                let as_if_answered = if self.parser.answering_head() { Reply::Head } else { Reply::Ok };
                self.health_probe = is_health_check(as_if_answered, &input[start..at], ctx.health_path);
                // A body follows the head: keep the head where the handler will find it.
                if let (Answering::Dynamic(dynamic), false) = (&mut ctx.answering, self.health_probe) {
                    let whole_body_here = self.parser.body_remaining().is_some_and(|n| (input.len() - at) as u64 >= n);
                    if whole_body_here {
                        in_place = Some((start, at));
                    } else if !self.assembly.start(&input[start..at], dynamic.bodies) {
                        // No buffer free for the body: refuse, the server decides to close.
                        self.parsed += 1;
                        self.push_page(Reply::ServiceUnavailable);
                        self.phase = Phase::Finishing { linger: true };
                        return input.len();
                    }
                }
            }
            let Some(mut reply) = reply else { continue };
            if reply.is_final() {
                self.parsed += 1;
            }
            let probe = if between {
                is_health_check(reply, &input[start..at], ctx.health_path)
            } else {
                // The end of a body: its head's probe, unless it was refused.
                reply.is_final() && std::mem::take(&mut self.health_probe) && framing_of(reply).is_some()
            };
            if probe {
                reply = if ctx.healthy { Reply::HealthReady } else { Reply::HealthDraining };
            }
            if let (Answering::Dynamic(_), Some(framing)) = (&ctx.answering, framing_of(reply)) {
                let head_only = matches!(reply, Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose);
                let closes =
                    self.answer_with_handler(input, between, start, at, in_place.take(), head_only, framing, ctx);
                if closes {
                    let client_asked = framing == Framing::Close;
                    self.phase = Phase::Finishing { linger: !(client_asked && at == input.len()) };
                    return input.len();
                }
                continue;
            }
            if let Answering::Dynamic(dynamic) = &mut ctx.answering {
                // An error ends the request being gathered.
                if reply != Reply::Continue {
                    self.assembly.release(dynamic.bodies);
                }
            }
            self.push_page(reply);
            if reply.closes() {
                // A client that asked to close and sent nothing after gets a
                // plain close. When the server decides (an error) the client
                // may still be sending: closing on unread input would reset
                // the connection and could destroy the reply, so it lingers.
                // A health check closes too: nothing follows it in practice.
                let client_asked =
                    matches!(reply, Reply::OkClose | Reply::HeadClose | Reply::HealthReady | Reply::HealthDraining);
                self.phase = Phase::Finishing { linger: !(client_asked && at == input.len()) };
                return input.len();
            }
        }
        at
    }

    /// Runs the handler on the request that just completed and queues its
    /// framed response; true when the connection closes after it. The head
    /// and body are in `input` (`between`: a request without a body, its
    /// head `start..at`; `in_place`: head and body in `input`) or in the
    /// pool buffer gathered for them.
    #[allow(clippy::too_many_arguments)]
    fn answer_with_handler(
        &mut self,
        input: &[u8],
        between: bool,
        start: usize,
        at: usize,
        in_place: Option<(usize, usize)>,
        head_only: bool,
        framing: Framing,
        ctx: &mut Context<'_>,
    ) -> bool {
        let Answering::Dynamic(dynamic) = &mut ctx.answering else { return false };
        // While draining, the answer says keep-alive in a field, so that it
        // can still close the connection if it turns out the last.
        let framing = if ctx.draining && framing == Framing::KeepAlive { Framing::KeepAliveField } else { framing };
        let date = ctx.responses.date();
        let peer = dynamic.peer;
        let room = self.out_len..ctx.out.len();
        let out = ctx.out.slice_mut(room);
        let result = match (between, in_place, self.assembly) {
            (true, _, _) => {
                answer(dynamic.handler, dynamic.scratch, &input[start..at], &[], peer, head_only, framing, date, out)
            }
            (false, Some((head_start, head_end)), _) => answer(
                dynamic.handler,
                dynamic.scratch,
                &input[head_start..head_end],
                &input[head_end..at],
                peer,
                head_only,
                framing,
                date,
                out,
            ),
            (false, None, Assembly::Pooled { index, head_len, len }) => {
                let gathered = dynamic.bodies.contents(index, len);
                let (head, body) = gathered.split_at(head_len);
                answer(dynamic.handler, dynamic.scratch, head, body, peer, head_only, framing, date, out)
            }
            (false, None, Assembly::Idle) => None,
        };
        self.assembly.release(dynamic.bodies);
        match result {
            Some(answered) => {
                self.keep_alive_at = answered.keep_alive_at.map(|at| self.out_len + at);
                self.out_len += answered.len;
                self.out_touched = self.out_touched.max(self.out_len);
                self.replies.push_dynamic(answered.len);
                answered.closes || framing == Framing::Close
            }
            None => {
                // Cannot happen (the room was checked, the head parsed before);
                // answer as a server that failed would, and close. What the
                // framing wrote before it stopped is unknown: count it all.
                self.out_touched = ctx.out.len();
                self.push_page(Reply::ServiceUnavailable);
                true
            }
        }
    }

    /// Queues a preformatted reply to the request being answered; any
    /// answer to a `HEAD` (an error, the health path's) goes without its
    /// content (RFC 9110 §9.3.2: its client reads none, and would take it
    /// for the next response). The `Head` pages have none already.
    pub(super) fn push_page(&mut self, reply: Reply) {
        let with_content = !matches!(reply, Reply::Continue | Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose);
        if self.parser.answering_head() && with_content {
            self.replies.push_head_of(reply);
        } else {
            self.replies.push(reply);
        }
    }

    /// Room to answer one more request: with a handler, room in the output
    /// buffer for the largest response; from the preformatted pages, fewer
    /// than [`OWED_BYTES`] owed (counted at the longest keep-alive page).
    fn has_room_to_answer(&self, ctx: &Context<'_>) -> bool {
        match &ctx.answering {
            Answering::Fixed => self.replies.replies() * ctx.responses.len_of(Reply::OkKeepAlive) < OWED_BYTES,
            Answering::Dynamic(dynamic) => ctx.out.len() - self.out_len >= dynamic.scratch.largest_framed(),
        }
    }
}

/// How a successful request's response ends the exchange; `None` for replies
/// that are not a request's success (errors, `100 Continue`).
fn framing_of(reply: Reply) -> Option<Framing> {
    match reply {
        Reply::Ok | Reply::Head => Some(Framing::KeepAlive),
        Reply::OkKeepAlive | Reply::HeadKeepAlive => Some(Framing::KeepAliveField),
        Reply::OkClose | Reply::HeadClose => Some(Framing::Close),
        _ => None,
    }
}
