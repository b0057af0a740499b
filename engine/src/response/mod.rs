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
//!
//! This file: the constants, the replies' state and what a send reads from
//! it; `layout.rs`: the pages laid out at start; `date.rs`: the pages a send
//! holds and the `Date` moved on; `format.rs`: one reply's bytes, and one on
//! its own for the master.

mod date;
mod format;
mod layout;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::http::Reply;

pub use self::format::standalone;

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
}
