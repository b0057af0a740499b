//! The pages laid out at start: each reply formatted around the body, its
//! copies back to back, a long body held once apart, every `Date` placed.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use super::date::{format_date, unix_second};
use super::format::format_reply;
use super::{copies_of, BodyApart, Responses, Template, BODY_APART, PAGES};
use crate::fallible;
use crate::http::Reply;

impl Responses {
    /// Formats every reply around `body`, dated `now`. The pages grow with
    /// a `body` up to [`BODY_APART`] (the copies of each reply at most
    /// [`RUN_BYTES`](super::RUN_BYTES), on each of 4 pages); a longer one is
    /// copied once and held apart, and the pages hold heads only. The
    /// allocator's refusal is an error, not an abort (see `fallible.rs`).
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
}
