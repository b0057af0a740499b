//! The replies a connection owes, in order and run-length encoded: a
//! pipelined burst of `n` identical requests is one entry. A reply is a
//! preformatted page or the next bytes of the connection's output buffer
//! (what a handler wrote).

use crate::http::Reply;

/// One queued reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// A preformatted page.
    Page(Reply),
    /// The head of a preformatted page without its content: an error or
    /// a health answer to a `HEAD` request (always the last reply: both close).
    HeadOf(Reply),
    /// A handler's response, framed in the connection's output buffer.
    Dynamic,
}

/// A run of identical replies; `bytes` counts a dynamic run's output bytes.
#[derive(Clone, Copy, Debug)]
struct Run {
    kind: Queued,
    count: u32,
    bytes: usize,
}

/// Most distinct reply runs queued before input is paused.
const QUEUE_RUNS: usize = 16;
/// Replies waiting to be sent, run-length encoded: a pipelined burst of `n`
/// identical requests is one entry.
#[derive(Clone, Copy, Debug)]
pub struct ReplyQueue {
    runs: [Run; QUEUE_RUNS],
    head: usize,
    len: usize,
    /// Replies queued, over every run.
    replies: usize,
}

impl ReplyQueue {
    pub const fn new() -> Self {
        ReplyQueue {
            runs: [Run { kind: Queued::Dynamic, count: 0, bytes: 0 }; QUEUE_RUNS],
            head: 0,
            len: 0,
            replies: 0,
        }
    }

    /// True when a reply of a new kind might not fit.
    pub fn is_full(&self) -> bool {
        self.len == QUEUE_RUNS
    }

    /// True when `n` replies of new kinds fit.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.len + n <= QUEUE_RUNS
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replies queued (a run of `n` counts `n`).
    pub fn replies(&self) -> usize {
        self.replies
    }

    /// Queues `reply`; the caller checked [`ReplyQueue::is_full`] first.
    pub fn push(&mut self, reply: Reply) {
        self.push_run(Queued::Page(reply), 0);
    }

    /// Queues the head of `reply`'s page without its content.
    pub fn push_head_of(&mut self, reply: Reply) {
        self.push_run(Queued::HeadOf(reply), 0);
    }

    /// Queues a handler's response of `bytes` bytes in the output buffer.
    pub fn push_dynamic(&mut self, bytes: usize) {
        self.push_run(Queued::Dynamic, bytes);
    }

    fn push_run(&mut self, kind: Queued, bytes: usize) {
        self.replies += 1;
        if self.len > 0 {
            let last = &mut self.runs[self.last_index()];
            if last.kind == kind {
                last.count += 1;
                last.bytes += bytes;
                return;
            }
        }
        debug_assert!(!self.is_full());
        self.runs[(self.head + self.len) % QUEUE_RUNS] = Run { kind, count: 1, bytes };
        self.len += 1;
    }

    /// Makes the last queued reply close the connection; false when nothing is
    /// queued, there is no room to split a run, or the last reply is a
    /// handler's (already framed).
    pub fn close_last(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        let full = self.is_full();
        let last = &mut self.runs[self.last_index()];
        let reply = match last.kind {
            Queued::Page(reply) => reply,
            // Only errors and health answers, which close already.
            Queued::HeadOf(_) => return true,
            Queued::Dynamic => return false,
        };
        let closing = reply.closing();
        if reply == closing {
            return true;
        }
        if last.count == 1 {
            last.kind = Queued::Page(closing);
            return true;
        }
        if full {
            return false;
        }
        last.count -= 1;
        self.replies -= 1;
        self.push(closing);
        true
    }

    /// Where the run queued last is (the queue is not empty).
    fn last_index(&self) -> usize {
        (self.head + self.len - 1) % QUEUE_RUNS
    }

    /// True when the reply queued last is a handler's response.
    pub fn last_is_dynamic(&self) -> bool {
        self.len > 0 && self.runs[self.last_index()].kind == Queued::Dynamic
    }

    /// The handler's response queued last became `by` bytes shorter.
    pub fn shorten_last(&mut self, by: usize) {
        debug_assert!(self.last_is_dynamic());
        let last = &mut self.runs[self.last_index()];
        last.bytes -= by;
    }

    /// What the front run is, if any.
    pub(super) fn front(&self) -> Option<Queued> {
        (self.len > 0).then(|| self.runs[self.head].kind)
    }

    /// Takes the front run: up to `max(reply)` of its pages (as many as one
    /// slice of the preformatted replies covers), or all of a dynamic run;
    /// returns what, how many replies and (dynamic) how many bytes.
    pub(super) fn take_front(&mut self, max: impl Fn(Reply) -> usize) -> Option<(Queued, usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let front = &mut self.runs[self.head];
        let take = match front.kind {
            Queued::Page(reply) => (front.count as usize).min(max(reply)),
            Queued::HeadOf(_) => 1,
            Queued::Dynamic => front.count as usize,
        };
        let taken = (front.kind, take, front.bytes);
        front.count -= take as u32;
        front.bytes = 0;
        self.replies -= take;
        if front.count == 0 {
            self.head = (self.head + 1) % QUEUE_RUNS;
            self.len -= 1;
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::MAX_RUN;

    #[test]
    fn only_the_last_reply_is_made_closing() {
        let mut queue = ReplyQueue::new();
        for _ in 0..3 {
            queue.push(Reply::Ok);
        }
        assert!(queue.close_last());
        assert_eq!(queue.take_front(|_| MAX_RUN), Some((Queued::Page(Reply::Ok), 2, 0)));
        assert_eq!(queue.take_front(|_| MAX_RUN), Some((Queued::Page(Reply::OkClose), 1, 0)));
        assert!(!queue.close_last(), "nothing queued");
        queue.push(Reply::Head);
        assert!(queue.close_last());
        assert_eq!(queue.take_front(|_| MAX_RUN), Some((Queued::Page(Reply::HeadClose), 1, 0)));
        queue.push_dynamic(10);
        assert!(!queue.close_last(), "a handler's response is framed already");
    }

    #[test]
    fn dynamic_replies_merge_into_one_run_of_their_bytes() {
        let mut queue = ReplyQueue::new();
        queue.push_dynamic(10);
        queue.push_dynamic(25);
        queue.push(Reply::BadRequest);
        assert_eq!(queue.take_front(|_| 1), Some((Queued::Dynamic, 2, 35)), "all of a dynamic run at once");
        assert_eq!(queue.take_front(|_| 1), Some((Queued::Page(Reply::BadRequest), 1, 0)));
        assert!(queue.is_empty());
    }

    #[test]
    fn the_replies_queued_are_counted_over_runs_splits_and_takes() {
        let mut queue = ReplyQueue::new();
        for _ in 0..40 {
            queue.push(Reply::Ok);
        }
        queue.push_dynamic(7);
        queue.push(Reply::Ok);
        queue.push(Reply::Ok);
        assert_eq!(queue.replies(), 43);
        assert!(queue.close_last(), "the last page split off its run");
        assert_eq!(queue.replies(), 43);
        assert_eq!(queue.take_front(|_| MAX_RUN), Some((Queued::Page(Reply::Ok), MAX_RUN, 0)));
        assert_eq!(queue.replies(), 43 - MAX_RUN);
        while queue.take_front(|_| MAX_RUN).is_some() {}
        assert_eq!(queue.replies(), 0);
    }

    #[test]
    fn queue_fills_up_with_alternating_kinds() {
        let mut queue = ReplyQueue::new();
        for i in 0..QUEUE_RUNS {
            assert!(!queue.is_full());
            queue.push(if i % 2 == 0 { Reply::Ok } else { Reply::Head });
        }
        assert!(queue.is_full());
    }
}
