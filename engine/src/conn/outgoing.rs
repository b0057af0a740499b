//! The send in progress: slices pointing into the preformatted response
//! pages, and how far the kernel has taken them.
//!
//! A run of identical preformatted replies is one slice; a reply whose long
//! body is held apart from the pages is two per copy, its head and the body
//! (see `response/mod.rs`). A partial send may stop anywhere, inside a head or
//! a body: [`Outgoing::advance`] moves over slices alike.

use super::replies::{Queued, ReplyQueue};
use super::OutBuf;
use crate::response::{PageHold, Responses};

/// Most slices in one send.
pub const MAX_IOVECS: usize = 16;

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
    pub fn new() -> Self {
        // SAFETY: iovec and msghdr are plain C structs for which all-zero is valid.
        let (iovec, header) = unsafe { (std::mem::zeroed::<libc::iovec>(), std::mem::zeroed::<libc::msghdr>()) };
        Outgoing { iovecs: [iovec; MAX_IOVECS], header, first: 0, count: 0, remaining: 0, answers: 0, hold: None }
    }

    /// Fills the send with queued replies; false when nothing was queued.
    /// Pages point into `responses`; a handler's responses are the next bytes
    /// of `out` from `*out_sent`, which moves past them.
    pub fn fill(
        &mut self,
        queue: &mut ReplyQueue,
        responses: &mut Responses,
        out: &OutBuf<'_>,
        out_sent: &mut usize,
    ) -> bool {
        self.first = 0;
        self.count = 0;
        self.remaining = 0;
        self.answers = 0;
        while self.count < MAX_IOVECS {
            // A reply with its body apart takes two slices: with one left, it waits for the next send.
            if self.count + 1 == MAX_IOVECS
                && queue
                    .front()
                    .is_some_and(|front| matches!(front, Queued::Page(reply) if responses.has_body_apart(reply)))
            {
                break;
            }
            let Some((queued, copies, dynamic_bytes)) = queue.take_front(|reply| responses.copies(reply)) else {
                break;
            };
            let bytes = match queued {
                Queued::Page(reply) => {
                    if reply.is_final() {
                        self.answers += copies as u32;
                    }
                    let (run, body_apart) = responses.slices(reply, copies);
                    if body_apart.is_empty() {
                        run
                    } else {
                        self.push(run);
                        body_apart
                    }
                }
                Queued::HeadOf(reply) => {
                    if reply.is_final() {
                        self.answers += 1;
                    }
                    responses.head_of(reply)
                }
                Queued::Dynamic => {
                    self.answers += copies as u32;
                    let start = *out_sent;
                    *out_sent += dynamic_bytes;
                    out.slice(start..start + dynamic_bytes)
                }
            };
            self.push(bytes);
        }
        if self.count == 0 {
            return false;
        }
        self.hold = Some(responses.hold());
        true
    }

    /// Adds `bytes` as the next slice (there is room: [`MAX_IOVECS`]).
    fn push(&mut self, bytes: &[u8]) {
        self.iovecs[self.count] = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
        self.remaining += bytes.len();
        self.count += 1;
    }

    /// The header to pass to `sendmsg` for what is left to send.
    pub fn header(&mut self) -> *const libc::msghdr {
        self.header.msg_iov = self.iovecs[self.first..].as_mut_ptr();
        self.header.msg_iovlen = self.count - self.first;
        &self.header
    }

    /// What is left to send when it is one slice: its start and length (a
    /// plain `send` then does, without a `msghdr`).
    pub fn single_slice(&self) -> Option<(*const u8, usize)> {
        (self.count - self.first == 1).then(|| {
            let iov = &self.iovecs[self.first];
            (iov.iov_base.cast_const().cast::<u8>(), iov.iov_len)
        })
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

    /// True while part of the filled slices is still to be sent.
    pub fn is_pending(&self) -> bool {
        self.remaining > 0
    }

    /// Ends the send, giving its page back; returns the requests it answered.
    pub fn finish(&mut self, responses: &mut Responses) -> u32 {
        if let Some(hold) = self.hold.take() {
            responses.release(hold);
        }
        self.first = 0;
        self.count = 0;
        self.remaining = 0;
        std::mem::take(&mut self.answers)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::http::Reply;

    #[test]
    fn identical_replies_share_a_run_and_a_slice() {
        let mut queue = ReplyQueue::new();
        for _ in 0..100 {
            queue.push(Reply::Ok);
        }
        queue.push(Reply::Head);
        let mut responses = Responses::new(b"hello world\n", SystemTime::now()).expect("replies");
        let mut out = Outgoing::new();
        assert!(out.fill(&mut queue, &mut responses, &OutBuf::empty(), &mut 0));
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
        let mut responses = Responses::new(b"x", SystemTime::now()).expect("replies");
        let mut out = Outgoing::new();
        assert!(out.fill(&mut queue, &mut responses, &OutBuf::empty(), &mut 0));
        let first = responses.len_of(Reply::Ok);
        assert!(!out.advance(first + 3));
        assert_eq!(out.first, 1);
        assert_eq!(out.iovecs[1].iov_len, responses.len_of(Reply::Head) - 3);
        assert!(out.advance(responses.len_of(Reply::Head) - 3));
        out.finish(&mut responses);
    }

    #[test]
    fn a_long_body_is_a_head_and_the_body_per_copy_and_sends_cross_them() {
        let body = vec![b'b'; 20_000];
        let mut responses = Responses::new(&body, SystemTime::now()).expect("replies");
        let mut queue = ReplyQueue::new();
        queue.push(Reply::Head);
        for _ in 0..10 {
            queue.push(Reply::Ok);
        }
        let mut out = Outgoing::new();
        assert!(out.fill(&mut queue, &mut responses, &OutBuf::empty(), &mut 0));
        // The HEAD, then 7 copies of two slices each; the 8th needs two, one is left.
        assert_eq!(out.count, MAX_IOVECS - 1);
        assert_eq!(out.answers, 8);
        assert_eq!(queue.replies(), 3);
        let head = responses.head_of(Reply::Ok).len();
        assert_eq!(out.iovecs[1].iov_len, head);
        assert_eq!(out.iovecs[2].iov_len, body.len());
        assert_eq!(out.iovecs[2].iov_base.cast_const(), out.iovecs[4].iov_base.cast_const(), "one body for every copy");
        assert_eq!(out.remaining, responses.len_of(Reply::Head) + 7 * (head + body.len()));
        // A send that stops inside a head, then one inside the body.
        assert!(!out.advance(responses.len_of(Reply::Head) + 5));
        assert_eq!((out.first, out.iovecs[1].iov_len), (1, head - 5));
        assert!(!out.advance(head - 5 + 100));
        assert_eq!((out.first, out.iovecs[2].iov_len), (2, body.len() - 100));
        assert_eq!(out.single_slice(), None);
        assert!(out.advance(out.remaining));
        assert_eq!(out.finish(&mut responses), 8);
        assert!(out.fill(&mut queue, &mut responses, &OutBuf::empty(), &mut 0));
        assert_eq!((out.count, out.answers), (6, 3));
        assert!(queue.is_empty());
        out.finish(&mut responses);
    }
}
