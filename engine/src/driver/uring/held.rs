//! Receive buffers a paused connection holds, in order, until it takes
//! their input.

/// Receive buffers a connection holds for input it could not take yet
/// (paused, its carry full): in order, each from an offset.
#[derive(Debug, Default)]
pub(super) struct Held {
    buffers: [(u16, u32, u32); MAX_HELD],
    len: usize,
}

/// Receive buffers one connection may hold: what one multishot round of
/// one-buffer receives can read (the kernel retries a multishot receive up
/// to 32 times before it requeues it), so there a pause costs nothing a
/// client sent before it. A bundle can bring more at once (what the socket
/// holds); either way a client that sends more while not reading its
/// answers is cut off, and one connection never pins more buffers than this.
const MAX_HELD: usize = 32;

impl Held {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds buffer `bid` from `start` to `end`; false when full.
    pub(super) fn push(&mut self, bid: u16, start: usize, end: usize) -> bool {
        if self.len == MAX_HELD {
            return false;
        }
        self.buffers[self.len] = (bid, start as u32, end as u32);
        self.len += 1;
        true
    }

    pub(super) fn front(&self) -> Option<(u16, usize, usize)> {
        (self.len > 0).then(|| {
            let (bid, start, end) = self.buffers[0];
            (bid, start as usize, end as usize)
        })
    }

    pub(super) fn advance_front(&mut self, start: usize) {
        self.buffers[0].1 = start as u32;
    }

    pub(super) fn pop_front(&mut self) -> Option<u16> {
        let (bid, _, _) = self.front()?;
        self.buffers.copy_within(1..self.len, 0);
        self.len -= 1;
        Some(bid)
    }
}
