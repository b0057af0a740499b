//! The replies a connection owes, in order and run-length encoded: a
//! pipelined burst of `n` identical requests is one entry.

use crate::http::Reply;

/// Most distinct reply runs queued before input is paused.
const QUEUE_RUNS: usize = 16;
/// Replies waiting to be sent, run-length encoded: a pipelined burst of `n`
/// identical requests is one entry.
#[derive(Clone, Copy, Debug)]
pub struct ReplyQueue {
    runs: [(Reply, u32); QUEUE_RUNS],
    head: usize,
    len: usize,
}

impl ReplyQueue {
    pub const fn new() -> Self {
        ReplyQueue { runs: [(Reply::Ok, 0); QUEUE_RUNS], head: 0, len: 0 }
    }

    /// True when a reply of a new kind might not fit.
    pub fn is_full(&self) -> bool {
        self.len == QUEUE_RUNS
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `reply`; the caller checked [`ReplyQueue::is_full`] first.
    pub fn push(&mut self, reply: Reply) {
        if self.len > 0 {
            let last = &mut self.runs[(self.head + self.len - 1) % QUEUE_RUNS];
            if last.0 == reply {
                last.1 += 1;
                return;
            }
        }
        debug_assert!(!self.is_full());
        self.runs[(self.head + self.len) % QUEUE_RUNS] = (reply, 1);
        self.len += 1;
    }

    /// Makes the last queued reply close the connection; false when nothing is
    /// queued or there is no room to split a run.
    pub fn close_last(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        let full = self.is_full();
        let last = &mut self.runs[(self.head + self.len - 1) % QUEUE_RUNS];
        let closing = last.0.closing();
        if last.0 == closing {
            return true;
        }
        if last.1 == 1 {
            last.0 = closing;
            return true;
        }
        if full {
            return false;
        }
        last.1 -= 1;
        self.push(closing);
        true
    }

    /// Takes up to `max` replies of the front run's kind.
    pub(super) fn take_front(&mut self, max: usize) -> Option<(Reply, usize)> {
        if self.len == 0 {
            return None;
        }
        let front = &mut self.runs[self.head];
        let take = (front.1 as usize).min(max);
        let reply = front.0;
        front.1 -= take as u32;
        if front.1 == 0 {
            self.head = (self.head + 1) % QUEUE_RUNS;
            self.len -= 1;
        }
        Some((reply, take))
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
        assert_eq!(queue.take_front(MAX_RUN), Some((Reply::Ok, 2)));
        assert_eq!(queue.take_front(MAX_RUN), Some((Reply::OkClose, 1)));
        assert!(!queue.close_last(), "nothing queued");
        queue.push(Reply::Head);
        assert!(queue.close_last());
        assert_eq!(queue.take_front(MAX_RUN), Some((Reply::HeadClose, 1)));
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
