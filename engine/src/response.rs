//! Preformatted responses, one per [`Reply`], with the `Date` header patched
//! in place once a second.
//!
//! Each reply's bytes are laid out up to [`MAX_RUN`] times back to back, so
//! `n` identical pipelined replies are one slice (`n * len` bytes from the
//! start): a send never copies a response, it points at it. A long reply
//! gets fewer copies ([`Responses::copies`]): one run of any reply is at
//! most [`RUN_BYTES`] (or one copy).
//!
//! A body longer than [`BODY_APART`] is not laid out at all: it is held
//! once, apart from the pages, and the pages hold only the heads of the
//! replies that carry it (one copy each). A copy of such a reply is two
//! slices, its head on the page and the body apart
//! ([`Responses::slices`]), so a worker's replies cost the body once plus a
//! few KiB, whatever its size. Before, the body was laid out in each of the
//! three replies that carry it (200, keep-alive, close) on each of the
//! pages: 12 times its size (a 100 MB body made a worker of 1.29 GB), and
//! before the copies were capped, 384 times.
//!
//! The kernel reads these bytes while a send is in flight, so the `Date` is
//! never rewritten under it: there are `PAGES` copies of the whole layout,
//! sends hold the page they point into, and once a second the next page no
//! send holds is patched and made current (with every other page held, the
//! date waits a tick). The body apart carries no date and is never
//! rewritten: every page's heads share it.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use crate::fallible;
use crate::http::Reply;

/// Most identical replies one slice covers.
pub const MAX_RUN: usize = 32;
/// Most bytes the copies of one reply take in a page (at least one copy).
pub const RUN_BYTES: usize = 16 << 10;
/// Longest body laid out on the pages; a longer one is held once, apart.
pub const BODY_APART: usize = RUN_BYTES;
/// Copies of the response layout, rotated as the date changes.
pub const PAGES: usize = 4;
/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;

/// Where one reply's run of copies sits in a page.
#[derive(Clone, Copy, Debug, Default)]
struct Template {
    offset: usize,
    /// Bytes of one copy on the page: the whole reply, or its head alone
    /// when its body is apart.
    stride: usize,
    /// Bytes of one reply as sent.
    len: usize,
    /// Copies laid out back to back: [`copies_of`] (one when the body is apart).
    copies: usize,
    /// Bytes of one copy's head (up to the empty line).
    head_len: usize,
    /// Its body is [`Responses::body_apart`], not on the page.
    body_apart: bool,
}

/// Copies of a reply of `len` bytes laid out back to back: as many as fit
/// in [`RUN_BYTES`], at least one, at most [`MAX_RUN`].
fn copies_of(len: usize) -> usize {
    (RUN_BYTES / len.max(1)).clamp(1, MAX_RUN)
}

/// Every reply, formatted and ready to send.
#[derive(Debug)]
pub struct Responses {
    pages: [Box<[u8]>; PAGES],
    /// The fixed body when it is longer than [`BODY_APART`] (else empty):
    /// held once, sent after the heads of the replies that carry it.
    body_apart: BodyApart,
    templates: [Template; Reply::ALL.len()],
    /// Offsets of every `Date` value in a page (the same in every page).
    date_offsets: Box<[usize]>,
    current: usize,
    holds: [u32; PAGES],
    current_second: u64,
    /// The current page's `Date` value, for responses framed elsewhere.
    date: [u8; DATE_LEN],
}

/// A long fixed body, held once apart from the pages.
#[derive(Debug)]
enum BodyApart {
    /// A copy made for the replies.
    Copied(Box<[u8]>),
    /// The handler's own buffer.
    Shared(Arc<[u8]>),
}

impl BodyApart {
    fn bytes(&self) -> &[u8] {
        match self {
            BodyApart::Copied(bytes) => bytes,
            BodyApart::Shared(bytes) => bytes,
        }
    }
}

/// A page index held by an in-flight send; give it back with [`Responses::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHold(u8);

impl Responses {
    /// Formats every reply around `body`, dated `now`. The pages grow with
    /// a `body` up to [`BODY_APART`] (the copies of each reply at most
    /// [`RUN_BYTES`], on each of 4 pages); a longer one is copied once and
    /// held apart, and the pages hold heads only. The allocator's refusal is
    /// an error, not an abort (see `fallible.rs`).
    pub fn new(body: &[u8], now: SystemTime) -> io::Result<Self> {
        Self::laid_out(body, now, |body| Ok(BodyApart::Copied(fallible::copied(body)?)))
    }

    /// As [`Responses::new`], keeping a long `body` as it is, not a copy of it.
    pub fn sharing(body: Arc<[u8]>, now: SystemTime) -> io::Result<Self> {
        let bytes = Arc::clone(&body);
        Self::laid_out(&bytes, now, move |_| Ok(BodyApart::Shared(body)))
    }

    /// The pages around `body`; `apart_from` holds the body apart, if it is long.
    fn laid_out(
        body: &[u8],
        now: SystemTime,
        apart_from: impl FnOnce(&[u8]) -> io::Result<BodyApart>,
    ) -> io::Result<Self> {
        let apart = body.len() > BODY_APART;
        let replies = Reply::ALL.map(|reply| {
            let (head, date_at, body_part) = format_reply(reply, body);
            // The fixed body, when apart, is sent after the head: not on the
            // page (the error bodies are a few bytes, always on it).
            let body_apart = apart && body_part.len() > BODY_APART;
            let on_page = if body_apart { &[][..] } else { body_part };
            let len = head.len() + body_part.len();
            let stride = head.len() + on_page.len();
            let copies = if body_apart { 1 } else { copies_of(len) };
            (head, date_at, on_page, Template { offset: 0, stride, len, copies, head_len: 0, body_apart })
        });
        let page_len = replies.iter().map(|(_, _, _, template)| template.copies * template.stride).sum();
        let dated: usize = replies
            .iter()
            .filter(|(_, date_at, _, _)| date_at.is_some())
            .map(|(_, _, _, template)| template.copies)
            .sum();
        let mut layout = fallible::with_capacity(page_len)?;
        let mut date_offsets = fallible::with_capacity(dated)?;
        let mut templates = [Template::default(); Reply::ALL.len()];
        for (reply, (head, date_at, on_page, template)) in Reply::ALL.into_iter().zip(&replies) {
            let offset = layout.len();
            for _ in 0..template.copies {
                if let Some(at) = date_at {
                    date_offsets.push(layout.len() + at);
                }
                layout.extend_from_slice(head);
                layout.extend_from_slice(on_page);
            }
            templates[reply as usize] = Template { offset, head_len: head.len(), ..*template };
        }
        let body_apart = if apart { apart_from(body)? } else { BodyApart::Copied(Box::default()) };
        let page: Box<[u8]> = layout.into_boxed_slice();
        let mut pages: [Box<[u8]>; PAGES] = Default::default();
        for copy in &mut pages[1..] {
            *copy = fallible::copied(&page)?;
        }
        pages[0] = page;
        let mut responses = Responses {
            pages,
            body_apart,
            templates,
            date_offsets: date_offsets.into_boxed_slice(),
            current: 0,
            holds: [0; PAGES],
            current_second: 0,
            date: format_date(now),
        };
        let second = unix_second(now);
        for page in 0..PAGES {
            responses.patch_date(page, now);
        }
        responses.current_second = second;
        Ok(responses)
    }

    /// How many copies of `reply` one slice may cover (at most [`MAX_RUN`]).
    pub fn copies(&self, reply: Reply) -> usize {
        self.templates[reply as usize].copies
    }

    /// The bytes of `count` (at most [`Responses::copies`]) copies of
    /// `reply` on the current page: the whole replies, or the head alone of
    /// a reply whose body is apart (see [`Responses::slices`]).
    pub fn run(&self, reply: Reply, count: usize) -> &[u8] {
        debug_assert!(count <= self.copies(reply));
        let template = self.templates[reply as usize];
        &self.pages[self.current][template.offset..template.offset + template.stride * count]
    }

    /// What to send for `count` (at most [`Responses::copies`]) copies of
    /// `reply`: the run on the current page, then, when its body is apart
    /// (a copy is then one reply), that body; else an empty slice.
    pub fn slices(&self, reply: Reply, count: usize) -> (&[u8], &[u8]) {
        let template = self.templates[reply as usize];
        let run = self.run(reply, count);
        if template.body_apart {
            (run, self.body_apart.bytes())
        } else {
            (run, &[])
        }
    }

    /// True when a copy of `reply` is two slices: its head and the body apart.
    pub fn has_body_apart(&self, reply: Reply) -> bool {
        self.templates[reply as usize].body_apart
    }

    /// The head of one `reply` on the current page, without its content (an
    /// error answering a `HEAD` request).
    pub fn head_of(&self, reply: Reply) -> &[u8] {
        let template = self.templates[reply as usize];
        &self.pages[self.current][template.offset..template.offset + template.head_len]
    }

    /// The length of one `reply`.
    pub fn len_of(&self, reply: Reply) -> usize {
        self.templates[reply as usize].len
    }

    /// Marks the current page as read by a send until [`Responses::release`].
    pub fn hold(&mut self) -> PageHold {
        self.holds[self.current] += 1;
        PageHold(self.current as u8)
    }

    /// Ends a hold taken by [`Responses::hold`].
    pub fn release(&mut self, hold: PageHold) {
        let held = &mut self.holds[usize::from(hold.0)];
        debug_assert!(*held > 0, "page released more often than held");
        *held = held.saturating_sub(1);
    }

    /// Moves the `Date` on when the second has changed; call it on every tick.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = unix_second(now);
        if second == self.current_second {
            return;
        }
        // The next page no send reads; with every other page read (slow
        // readers' sends in flight), the old date stays one more tick.
        let free = (1..PAGES).map(|step| (self.current + step) % PAGES).find(|&page| self.holds[page] == 0);
        let Some(next) = free else { return };
        self.patch_date(next, now);
        self.current = next;
        self.current_second = second;
        self.date = format_date(now);
    }

    /// The `Date` value the current page carries (IMF-fixdate, 29 bytes).
    pub fn date(&self) -> &[u8] {
        &self.date
    }

    fn patch_date(&mut self, page: usize, now: SystemTime) {
        let date = format_date(now);
        let bytes = &mut self.pages[page];
        for &at in self.date_offsets.iter() {
            bytes[at..at + DATE_LEN].copy_from_slice(&date);
        }
    }
}

/// One reply on its own, dated `now`, for a process that sends one now and
/// then (the master refusing a connection); it allocates.
pub fn standalone(reply: Reply, body: &[u8], now: SystemTime) -> Vec<u8> {
    let (mut bytes, date_at, body_part) = format_reply(reply, body);
    if let Some(at) = date_at {
        bytes[at..at + DATE_LEN].copy_from_slice(&format_date(now));
    }
    bytes.extend_from_slice(body_part);
    bytes
}

/// The head of one reply, where its date goes, and its body.
fn format_reply(reply: Reply, body: &[u8]) -> (Vec<u8>, Option<usize>, &[u8]) {
    let (code, reason) = reply.status();
    if reply == Reply::Continue {
        return (format!("HTTP/1.1 {code} {reason}\r\n\r\n").into_bytes(), None, &[]);
    }
    let mut head = format!("HTTP/1.1 {code} {reason}\r\nServer: ringmaster\r\nDate: ");
    let date_at = head.len();
    head.push_str(&" ".repeat(DATE_LEN));
    let error_body = error_body(reply);
    let (content_length, body_part): (usize, &[u8]) = match reply {
        Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => (body.len(), body),
        Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose => (body.len(), &[]),
        _ => (error_body.len(), error_body),
    };
    let _ = write!(head, "\r\nContent-Type: text/plain\r\nContent-Length: {content_length}\r\n");
    match reply {
        Reply::OkKeepAlive | Reply::HeadKeepAlive => head.push_str("Connection: keep-alive\r\n"),
        _ if reply.closes() => head.push_str("Connection: close\r\n"),
        _ => {}
    }
    head.push_str("\r\n");
    (head.into_bytes(), Some(date_at), body_part)
}

/// The body of an error or health reply: its reason phrase (or state) and a newline.
fn error_body(reply: Reply) -> &'static [u8] {
    match reply {
        Reply::BadRequest => b"Bad Request\n",
        Reply::RequestTimeout => b"Request Timeout\n",
        Reply::ContentTooLarge => b"Content Too Large\n",
        Reply::UriTooLong => b"URI Too Long\n",
        Reply::ExpectationFailed => b"Expectation Failed\n",
        Reply::HeaderTooLarge => b"Request Header Fields Too Large\n",
        Reply::NotImplemented => b"Not Implemented\n",
        Reply::ServiceUnavailable => b"Service Unavailable\n",
        Reply::VersionNotSupported => b"HTTP Version Not Supported\n",
        Reply::HealthReady => b"ready\n",
        Reply::HealthDraining => b"draining\n",
        _ => b"",
    }
}

fn unix_second(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Formats `now` as an IMF-fixdate into a fixed buffer (no allocation).
fn format_date(now: SystemTime) -> [u8; DATE_LEN] {
    struct Fixed {
        bytes: [u8; DATE_LEN],
        len: usize,
    }
    impl std::fmt::Write for Fixed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut out = Fixed { bytes: [b' '; DATE_LEN], len: 0 };
    // httpdate renders RFC 9110's IMF-fixdate, always 29 bytes for years 1970-9999.
    let _ = write!(out, "{}", httpdate::HttpDate::from(now));
    out.bytes
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_long_reply_gets_fewer_copies_and_the_pages_stay_a_few_times_the_body() {
        let small = Responses::new(b"hello world\n", SystemTime::UNIX_EPOCH).expect("replies");
        assert_eq!(small.copies(Reply::Ok), MAX_RUN);
        assert!(!small.has_body_apart(Reply::Ok));
        // The longest body still laid out on the pages: one copy of each reply carrying it.
        let body = vec![b'x'; BODY_APART];
        let long = Responses::new(&body, SystemTime::UNIX_EPOCH).expect("replies");
        assert_eq!(long.copies(Reply::Ok), 1);
        assert!(!long.has_body_apart(Reply::Ok));
        assert_eq!(long.copies(Reply::Head), MAX_RUN, "a head alone is short");
        let one = long.run(Reply::Ok, 1);
        assert!(one.ends_with(&body) && one.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // Three replies carry the body (200, 200 keep-alive, 200 close), on
        // each page, beside the other replies' copies.
        let page_bytes = |responses: &Responses| responses.pages.iter().map(|page| page.len()).sum::<usize>();
        let bytes = page_bytes(&long) - page_bytes(&small);
        assert!(bytes < PAGES * 4 * body.len(), "{bytes} bytes of pages for a body of {}", body.len());
        let mid = Responses::new(&[b'y'; 1000], SystemTime::UNIX_EPOCH).expect("replies");
        let len = mid.run(Reply::Ok, 1).len();
        assert_eq!(mid.copies(Reply::Ok), RUN_BYTES / len);
        assert_eq!(mid.run(Reply::Ok, mid.copies(Reply::Ok)).len(), len * mid.copies(Reply::Ok));
    }

    /// Until 2026-12-06 a long body was laid out in three replies on each
    /// of the 4 pages: 12 MB of pages for a 1 MB body, 1.2 GB for 100 MB.
    #[test]
    fn the_pages_do_not_grow_with_a_long_body() {
        let page_bytes = |responses: &Responses| responses.pages.iter().map(|page| page.len()).sum::<usize>();
        let small = Responses::new(b"hello world\n", SystemTime::UNIX_EPOCH).expect("replies");
        for len in [BODY_APART + 1, 1 << 20, 10 << 20] {
            let long = Responses::new(&vec![b'x'; len], SystemTime::UNIX_EPOCH).expect("replies");
            let bytes = page_bytes(&long);
            // The heads alone, fewer than the small body's 32 copies of whole replies.
            assert!(bytes < page_bytes(&small), "{bytes} bytes of pages for a body of {len}");
        }
    }

    #[test]
    fn a_long_body_is_sent_apart_after_each_head() {
        let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let now = at(EPOCH_PLUS);
        let copied = Responses::new(&body, now).expect("replies");
        let shared: Arc<[u8]> = Arc::from(body.clone());
        let sharing = Responses::sharing(Arc::clone(&shared), now).expect("replies");
        for responses in [&copied, &sharing] {
            for reply in [Reply::Ok, Reply::OkKeepAlive, Reply::OkClose] {
                assert!(responses.has_body_apart(reply));
                assert_eq!(responses.copies(reply), 1);
                let (head, apart) = responses.slices(reply, 1);
                assert_eq!(head, responses.head_of(reply));
                assert_eq!([head, apart].concat(), standalone(reply, &body, now), "{reply:?}");
                assert_eq!(responses.len_of(reply), head.len() + body.len());
            }
            // A HEAD's reply has no body to hold apart: laid out as before.
            assert!(!responses.has_body_apart(Reply::Head));
            assert_eq!(responses.slices(Reply::Head, MAX_RUN).1, b"");
            assert!(text(responses.run(Reply::Head, 1)).contains("Content-Length: 100000\r\n"));
            // Error replies keep their short bodies on the pages.
            assert_eq!(responses.slices(Reply::BadRequest, 1).1, b"");
        }
        // Shared: the handler's buffer itself, not a copy.
        assert_eq!(sharing.slices(Reply::Ok, 1).1.as_ptr(), shared.as_ptr());
    }

    #[test]
    fn the_date_moves_on_the_heads_of_a_long_body_and_the_body_stays() {
        let body = vec![b'z'; 50_000];
        let mut responses = Responses::new(&body, at(EPOCH_PLUS)).expect("replies");
        let before = responses.slices(Reply::Ok, 1).1.as_ptr();
        responses.refresh(at(EPOCH_PLUS + 1));
        let (head, apart) = responses.slices(Reply::Ok, 1);
        assert!(text(head).contains("08:49:38 GMT"));
        assert_eq!(apart.as_ptr(), before, "every page's heads share the one body");
        assert_eq!(apart, &body[..]);
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).expect("responses are ASCII")
    }

    const EPOCH_PLUS: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn ok_reply_is_complete() {
        let responses = Responses::new(b"hello world\n", at(EPOCH_PLUS)).expect("replies");
        assert_eq!(
            text(responses.run(Reply::Ok, 1)),
            "HTTP/1.1 200 OK\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
        );
    }

    #[test]
    fn head_and_connection_variants() {
        let responses = Responses::new(b"abc", at(EPOCH_PLUS)).expect("replies");
        let head = text(responses.run(Reply::HeadClose, 1));
        assert!(head.contains("Content-Length: 3\r\nConnection: close\r\n\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        let keep = text(responses.run(Reply::OkKeepAlive, 1));
        assert!(keep.contains("Connection: keep-alive\r\n\r\nabc"));
        assert_eq!(text(responses.run(Reply::Continue, 1)), "HTTP/1.1 100 Continue\r\n\r\n");
        let bad = text(responses.run(Reply::HeaderTooLarge, 1));
        assert!(bad.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(bad.ends_with("Connection: close\r\n\r\nRequest Header Fields Too Large\n"));
    }

    #[test]
    fn a_standalone_reply_is_dated_and_complete() {
        let text = text(&standalone(Reply::ServiceUnavailable, b"", at(EPOCH_PLUS)));
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n"
        );
    }

    #[test]
    fn runs_are_back_to_back_copies() {
        let responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
        let one = responses.run(Reply::Ok, 1).to_vec();
        let many = responses.run(Reply::Ok, MAX_RUN);
        assert_eq!(many.len(), one.len() * MAX_RUN);
        assert!(many.chunks(one.len()).all(|copy| copy == one));
    }

    #[test]
    fn date_moves_to_a_free_page_only() {
        let mut responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
        let hold = responses.hold();
        responses.refresh(at(EPOCH_PLUS + 1));
        assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:38 GMT"));
        // The held page still carries the old date.
        assert!(text(&responses.pages[usize::from(hold.0)]).contains("08:49:37 GMT"));
        // Round the pages until the next is the held one: the date skips it.
        // Before, it waited there for as long as the send held it (a client
        // that does not read: up to the idle timeout).
        for second in 2..=4 {
            responses.refresh(at(EPOCH_PLUS + second));
        }
        assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:41 GMT"));
        assert_ne!(responses.current, usize::from(hold.0));
        assert!(text(&responses.pages[usize::from(hold.0)]).contains("08:49:37 GMT"));
        responses.release(hold);
    }

    #[test]
    fn date_waits_only_while_every_other_page_is_held() {
        let mut responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
        let mut holds = vec![responses.hold()];
        for second in 1..PAGES as u64 {
            responses.refresh(at(EPOCH_PLUS + second));
            holds.push(responses.hold());
        }
        // Every page held, the current one too: the date waits.
        responses.refresh(at(EPOCH_PLUS + 10));
        assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:40 GMT"));
        // One page let go, the date moves there.
        let freed = holds.remove(1);
        responses.release(freed);
        responses.refresh(at(EPOCH_PLUS + 10));
        assert_eq!(responses.current, usize::from(freed.0));
        assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:47 GMT"));
        for hold in holds {
            responses.release(hold);
        }
    }
}
