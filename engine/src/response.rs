//! Preformatted responses, one per [`Reply`], with the `Date` header patched
//! in place once a second.
//!
//! Each reply's bytes are laid out up to [`MAX_RUN`] times back to back, so
//! `n` identical pipelined replies are one slice (`n * len` bytes from the
//! start): a send never copies a response, it points at it. A long reply
//! gets fewer copies ([`Responses::copies`]): one run of any reply is at
//! most [`RUN_BYTES`] (or one copy), so that a large fixed body costs its
//! pages a few times its size, not 384 times (32 copies in each of three
//! replies on each of 4 pages: a 1 MB body made 384 MB per worker).
//!
//! The kernel reads these bytes while a send is in flight, so the `Date` is
//! never rewritten under it: there are `PAGES` copies of the whole layout,
//! sends hold the page they point into, and once a second the next page no
//! send holds is patched and made current (with every other page held, the
//! date waits a tick).

use std::fmt::Write as _;
use std::io;
use std::time::SystemTime;

use crate::fallible;
use crate::http::Reply;

/// Most identical replies one slice covers.
pub const MAX_RUN: usize = 32;
/// Most bytes the copies of one reply take in a page (at least one copy).
pub const RUN_BYTES: usize = 16 << 10;
/// Copies of the response layout, rotated as the date changes.
pub const PAGES: usize = 4;
/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;

/// Where one reply's run of copies sits in a page.
#[derive(Clone, Copy, Debug, Default)]
struct Template {
    offset: usize,
    len: usize,
    /// Copies laid out back to back: [`copies_of`].
    copies: usize,
    /// Bytes of one copy's head (up to the empty line).
    head_len: usize,
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
    templates: [Template; Reply::ALL.len()],
    /// Offsets of every `Date` value in a page (the same in every page).
    date_offsets: Box<[usize]>,
    current: usize,
    holds: [u32; PAGES],
    current_second: u64,
    /// The current page's `Date` value, for responses framed elsewhere.
    date: [u8; DATE_LEN],
}

/// A page index held by an in-flight send; give it back with [`Responses::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHold(u8);

impl Responses {
    /// Formats every reply around `body`, dated `now`. Its pages grow with
    /// `body` (32 copies of it in each of three replies, on each of 4
    /// pages): the allocator's refusal is an error, not an abort (see
    /// `fallible.rs`).
    pub fn new(body: &[u8], now: SystemTime) -> io::Result<Self> {
        let replies = Reply::ALL.map(|reply| format_reply(reply, body));
        let run = |(head, _, body_part): &(Vec<u8>, Option<usize>, &[u8])| {
            let len = head.len() + body_part.len();
            copies_of(len) * len
        };
        let page_len = replies.iter().map(run).sum();
        let dated: usize = replies
            .iter()
            .filter(|(_, date_at, _)| date_at.is_some())
            .map(|(head, _, body_part)| copies_of(head.len() + body_part.len()))
            .sum();
        let mut layout = fallible::with_capacity(page_len)?;
        let mut date_offsets = fallible::with_capacity(dated)?;
        let mut templates = [Template::default(); Reply::ALL.len()];
        for (reply, (head, date_at, body_part)) in Reply::ALL.into_iter().zip(&replies) {
            let offset = layout.len();
            let copies = copies_of(head.len() + body_part.len());
            for _ in 0..copies {
                if let Some(at) = date_at {
                    date_offsets.push(layout.len() + at);
                }
                layout.extend_from_slice(head);
                layout.extend_from_slice(body_part);
            }
            templates[reply as usize] =
                Template { offset, len: head.len() + body_part.len(), copies, head_len: head.len() };
        }
        let page: Box<[u8]> = layout.into_boxed_slice();
        let mut pages: [Box<[u8]>; PAGES] = Default::default();
        for copy in &mut pages[1..] {
            *copy = fallible::copied(&page)?;
        }
        pages[0] = page;
        let mut responses = Responses {
            pages,
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

    /// The bytes of `count` (at most [`Responses::copies`]) copies of `reply` on the current page.
    pub fn run(&self, reply: Reply, count: usize) -> &[u8] {
        debug_assert!(count <= self.copies(reply));
        let template = self.templates[reply as usize];
        &self.pages[self.current][template.offset..template.offset + template.len * count]
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
        let body = vec![b'x'; 1 << 20];
        let large = Responses::new(&body, SystemTime::UNIX_EPOCH).expect("replies");
        assert_eq!(large.copies(Reply::Ok), 1);
        assert_eq!(large.copies(Reply::Head), MAX_RUN, "a head alone is short");
        let one = large.run(Reply::Ok, 1);
        assert!(one.ends_with(&body) && one.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // Three replies carry the body (200, 200 keep-alive, 200 close), on each page.
        let bytes: usize = large.pages.iter().map(|page| page.len()).sum();
        assert!(bytes < PAGES * 4 * body.len(), "{bytes} bytes of pages for a body of {}", body.len());
        let mid = Responses::new(&[b'y'; 1000], SystemTime::UNIX_EPOCH).expect("replies");
        let len = mid.run(Reply::Ok, 1).len();
        assert_eq!(mid.copies(Reply::Ok), RUN_BYTES / len);
        assert_eq!(mid.run(Reply::Ok, mid.copies(Reply::Ok)).len(), len * mid.copies(Reply::Ok));
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
