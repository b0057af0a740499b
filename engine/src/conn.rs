//! One connection's state: parser, queued replies and the send in flight.

use std::os::fd::RawFd;

use crate::http::{Reply, RequestParser};
use crate::response::{PageHold, Responses, MAX_RUN};

/// Most distinct reply runs queued before input is paused.
const QUEUE_RUNS: usize = 16;
/// Most slices in one send.
pub const MAX_IOVECS: usize = 16;

/// Replies waiting to be sent, run-length encoded: a pipelined burst of `n`
/// identical requests is one entry.
#[derive(Clone, Copy, Debug)]
pub struct ReplyQueue {
    runs: [(Reply, u32); QUEUE_RUNS],
    head: usize,
    len: usize,
}

impl ReplyQueue {
    const fn new() -> Self {
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
    fn take_front(&mut self, max: usize) -> Option<(Reply, usize)> {
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

/// The send in flight: slices into the response pages and how far it got.
#[derive(Debug)]
pub struct Outgoing {
    iovecs: [libc::iovec; MAX_IOVECS],
    header: libc::msghdr,
    first: usize,
    count: usize,
    remaining: usize,
    /// Final replies (requests answered) in this send.
    answers: u32,
    hold: Option<PageHold>,
}

impl Outgoing {
    fn new() -> Self {
        // SAFETY: iovec and msghdr are plain C structs for which all-zero is valid.
        let (iovec, header) = unsafe { (std::mem::zeroed::<libc::iovec>(), std::mem::zeroed::<libc::msghdr>()) };
        Outgoing { iovecs: [iovec; MAX_IOVECS], header, first: 0, count: 0, remaining: 0, answers: 0, hold: None }
    }

    /// Fills the send with queued replies; false when nothing was queued.
    pub fn fill(&mut self, queue: &mut ReplyQueue, responses: &mut Responses) -> bool {
        self.first = 0;
        self.count = 0;
        self.remaining = 0;
        self.answers = 0;
        while self.count < MAX_IOVECS {
            let Some((reply, copies)) = queue.take_front(MAX_RUN) else { break };
            if reply.is_final() {
                self.answers += copies as u32;
            }
            let bytes = responses.run(reply, copies);
            self.iovecs[self.count] = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
            self.remaining += bytes.len();
            self.count += 1;
        }
        if self.count == 0 {
            return false;
        }
        self.hold = Some(responses.hold());
        true
    }

    /// The header to pass to `sendmsg` for what is left to send.
    pub fn header(&mut self) -> *const libc::msghdr {
        self.header.msg_iov = self.iovecs[self.first..].as_mut_ptr();
        self.header.msg_iovlen = self.count - self.first;
        &self.header
    }

    /// Records `sent` bytes as gone; true when everything was sent.
    pub fn advance(&mut self, mut sent: usize) -> bool {
        self.remaining = self.remaining.saturating_sub(sent);
        while sent > 0 && self.first < self.count {
            let iov = &mut self.iovecs[self.first];
            if sent >= iov.iov_len {
                sent -= iov.iov_len;
                self.first += 1;
            } else {
                // SAFETY: `sent < iov_len`, so the new base stays inside the same slice.
                iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(sent) }.cast();
                iov.iov_len -= sent;
                sent = 0;
            }
        }
        self.remaining == 0
    }

    /// Ends the send, giving its page back; returns the requests it answered.
    pub fn finish(&mut self, responses: &mut Responses) -> u32 {
        if let Some(hold) = self.hold.take() {
            responses.release(hold);
        }
        std::mem::take(&mut self.answers)
    }
}

/// Which timer a connection's deadline stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Waiting for a complete header block (`--header-timeout`, not refreshed).
    Header,
    /// Idle, reading a body or writing to a slow reader (`--idle-timeout`, refreshed).
    Idle,
    /// Closing: waiting for the client's FIN after ours.
    Linger,
}

/// A connection in the slab.
#[derive(Debug)]
pub struct Conn {
    /// The socket (owned: closed through the ring when the connection ends).
    pub fd: RawFd,
    /// The request state machine.
    pub parser: RequestParser,
    /// Replies waiting to be sent.
    pub replies: ReplyQueue,
    /// The send in flight (valid while `sending`).
    pub outgoing: Outgoing,
    /// Bytes of an incomplete header block (or paused input) kept in the carry buffer.
    pub carry_len: usize,
    /// When the current timer fires, in coarse monotonic milliseconds.
    pub deadline: u64,
    /// What the deadline is for.
    pub timer: Timer,
    /// The multishot receive is armed.
    pub receiving: bool,
    /// A send is in flight.
    pub sending: bool,
    /// A closing reply is queued: no more input is parsed.
    pub close_after_send: bool,
    /// Close by half-closing and waiting for the client's FIN (see `feed`).
    pub linger: bool,
    /// Our FIN is sent; input is discarded until the client's.
    pub lingering: bool,
    /// Input is held in the carry buffer until queued replies drain.
    pub paused: bool,
    /// The client closed its side.
    pub peer_closed: bool,
    /// The fd is closed (through the ring); the slot waits for its ops to end.
    pub closing: bool,
}

impl Conn {
    /// An empty slot.
    pub fn new() -> Self {
        Conn {
            fd: -1,
            parser: RequestParser::new(),
            replies: ReplyQueue::new(),
            outgoing: Outgoing::new(),
            carry_len: 0,
            deadline: 0,
            timer: Timer::Header,
            receiving: false,
            sending: false,
            close_after_send: false,
            linger: false,
            lingering: false,
            paused: false,
            peer_closed: false,
            closing: false,
        }
    }

    /// Readies the slot for a new connection on `fd`.
    pub fn open(&mut self, fd: RawFd, header_deadline: u64) {
        *self = Conn { fd, deadline: header_deadline, ..Conn::new() };
    }

    /// Nothing in progress: no partial request, nothing queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.parser.between_requests() && self.carry_len == 0 && self.replies.is_empty() && !self.sending
    }
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn identical_replies_share_a_run_and_a_slice() {
        let mut queue = ReplyQueue::new();
        for _ in 0..100 {
            queue.push(Reply::Ok);
        }
        queue.push(Reply::Head);
        let mut responses = Responses::new(b"hello world\n", SystemTime::now());
        let mut out = Outgoing::new();
        assert!(out.fill(&mut queue, &mut responses));
        // 100 = 32 + 32 + 32 + 4, then the HEAD: five slices.
        assert_eq!(out.count, 5);
        let one = responses.len_of(Reply::Ok);
        assert_eq!(out.remaining, one * 100 + responses.len_of(Reply::Head));
        assert!(queue.is_empty());
        out.finish(&mut responses);
    }

    #[test]
    fn partial_sends_advance_through_the_slices() {
        let mut queue = ReplyQueue::new();
        queue.push(Reply::Ok);
        queue.push(Reply::Head);
        let mut responses = Responses::new(b"x", SystemTime::now());
        let mut out = Outgoing::new();
        assert!(out.fill(&mut queue, &mut responses));
        let first = responses.len_of(Reply::Ok);
        assert!(!out.advance(first + 3));
        assert_eq!(out.first, 1);
        assert_eq!(out.iovecs[1].iov_len, responses.len_of(Reply::Head) - 3);
        assert!(out.advance(responses.len_of(Reply::Head) - 3));
        out.finish(&mut responses);
    }

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
