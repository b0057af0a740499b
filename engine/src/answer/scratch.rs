//! The buffers a handler writes its response into, made at start (one set
//! per worker), and the count of its panics.

use super::frame::FRAMING;

/// Room for the fields a handler writes.
pub(crate) const FIELDS: usize = 4096;

/// The buffers a handler writes its response into (one per worker).
#[derive(Debug)]
pub struct ResponseScratch {
    pub(super) fields: Box<[u8]>,
    pub(super) body: Box<[u8]>,
    /// Times the handler panicked (see [`crate::panic_guard`]).
    pub(super) panics: u64,
}

impl ResponseScratch {
    /// Room for responses of up to `max_response` bytes of body; an error
    /// when the allocator refuses the memory (see `fallible.rs`).
    pub fn new(max_response: usize) -> std::io::Result<ResponseScratch> {
        Ok(ResponseScratch {
            fields: crate::fallible::zeroed(FIELDS)?,
            body: crate::fallible::zeroed(max_response)?,
            panics: 0,
        })
    }

    /// The most bytes one framed response takes in an output buffer.
    pub fn largest_framed(&self) -> usize {
        FRAMING + FIELDS + self.body.len()
    }

    /// Times the handler panicked, in `handle` or `on_message`.
    pub fn panics(&self) -> u64 {
        self.panics
    }

    /// Counts a panic of the handler's outside [`answer`](super::answer) (`on_message`).
    pub fn count_panic(&mut self) {
        self.panics += 1;
    }
}
