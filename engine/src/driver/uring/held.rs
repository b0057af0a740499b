//! Receive buffers paused connections hold, in order, until they take
//! their input.
//!
//! A multishot receive reads ahead: everything a client has written comes
//! into ring buffers, whether or not its connection can take it (its answers
//! fill the output while the client does not read them). So a paused
//! connection keeps those buffers, chained in order through one link per
//! buffer of the ring. Each connection may hold [`HELD_EACH`]; beyond that
//! it may hold more while all connections together hold less than half the
//! ring, so a client that pipelines a lot before reading is served, and the
//! other half stays free for everyone else's input. Past both, the
//! connection is cut off.

/// No buffer.
const NONE: u16 = u16::MAX;

/// Buffers any one connection may hold, whatever the others hold: what one
/// multishot round of one-buffer receives can read (the kernel retries a
/// multishot receive up to 32 times before it requeues it). A bundle
/// completion is capped at 8 buffers where the kernel can (Linux 6.17,
/// `uring::recv_bundle_cap`); before, one could read a whole pipeline ahead.
const HELD_EACH: u16 = 32;

/// One connection's held buffers: the ends of its chain, and how many.
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    head: u16,
    tail: u16,
    len: u16,
}

impl Default for Held {
    fn default() -> Held {
        Held { head: NONE, tail: NONE, len: 0 }
    }
}

impl Held {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The chains of every connection's held buffers: for each buffer of the
/// ring, the next one held after it and the part of it not yet taken.
#[derive(Debug)]
pub(super) struct HeldBuffers {
    next: Box<[u16]>,
    range: Box<[(u32, u32)]>,
    /// Buffers held now, by all connections.
    total: usize,
    /// Above [`HELD_EACH`], a connection may hold more only while `total`
    /// is below this: half the ring.
    shared_limit: usize,
}

impl HeldBuffers {
    /// Chains for a ring of `buffers` buffers (made once, at start).
    pub(super) fn new(buffers: u16) -> HeldBuffers {
        let count = usize::from(buffers);
        HeldBuffers {
            next: vec![NONE; count].into_boxed_slice(),
            range: vec![(0, 0); count].into_boxed_slice(),
            total: 0,
            shared_limit: count / 2,
        }
    }

    /// Holds buffer `bid`, from `start` to `end`, after what `held` holds;
    /// false when the connection may hold no more.
    pub(super) fn push(&mut self, held: &mut Held, bid: u16, start: usize, end: usize) -> bool {
        if held.len >= HELD_EACH && self.total >= self.shared_limit {
            return false;
        }
        let index = usize::from(bid);
        self.next[index] = NONE;
        self.range[index] = (start as u32, end as u32);
        if held.len == 0 {
            held.head = bid;
        } else {
            self.next[usize::from(held.tail)] = bid;
        }
        held.tail = bid;
        held.len += 1;
        self.total += 1;
        true
    }

    /// The first buffer `held` holds, and the part of it not taken yet.
    pub(super) fn front(&self, held: &Held) -> Option<(u16, usize, usize)> {
        (held.len > 0).then(|| {
            let (start, end) = self.range[usize::from(held.head)];
            (held.head, start as usize, end as usize)
        })
    }

    /// The first buffer's input is taken up to `start`.
    pub(super) fn advance_front(&mut self, held: &Held, start: usize) {
        if held.len > 0 {
            self.range[usize::from(held.head)].0 = start as u32;
        }
    }

    /// Lets go of the first buffer `held` holds; returns it, to recycle.
    pub(super) fn pop_front(&mut self, held: &mut Held) -> Option<u16> {
        if held.len == 0 {
            return None;
        }
        let bid = held.head;
        held.head = self.next[usize::from(bid)];
        held.len -= 1;
        if held.len == 0 {
            held.tail = NONE;
        }
        self.total -= 1;
        Some(bid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_gets_its_buffers_back_in_order() {
        let mut chains = HeldBuffers::new(64);
        let (mut a, mut b) = (Held::default(), Held::default());
        for (bid, to_a) in [(5, true), (9, false), (2, true), (7, false), (3, true)] {
            let held = if to_a { &mut a } else { &mut b };
            assert!(chains.push(held, bid, 0, 100));
        }
        chains.advance_front(&a, 40);
        assert_eq!(chains.front(&a), Some((5, 40, 100)));
        let popped: Vec<u16> = std::iter::from_fn(|| chains.pop_front(&mut a)).collect();
        assert_eq!(popped, [5, 2, 3]);
        assert!(a.is_empty() && chains.front(&a).is_none());
        assert_eq!(chains.pop_front(&mut b), Some(9));
        // Held again after emptying: a fresh chain.
        assert!(chains.push(&mut a, 11, 1, 2));
        assert_eq!(chains.front(&a), Some((11, 1, 2)));
        assert_eq!(chains.pop_front(&mut b), Some(7));
        assert_eq!(chains.pop_front(&mut a), Some(11));
        assert_eq!(chains.total, 0);
    }

    #[test]
    fn beyond_its_own_share_a_connection_holds_more_only_while_half_the_ring_is_free() {
        let mut chains = HeldBuffers::new(256);
        let mut greedy = Held::default();
        let mut bid = 0u16;
        while chains.push(&mut greedy, bid, 0, 1) {
            bid += 1;
        }
        assert_eq!(bid, 128, "half the ring");
        // Another connection still gets its own share, whatever is held.
        let mut other = Held::default();
        for _ in 0..HELD_EACH {
            assert!(chains.push(&mut other, bid, 0, 1));
            bid += 1;
        }
        assert!(!chains.push(&mut other, bid, 0, 1));
        // Room comes back as buffers are taken.
        chains.pop_front(&mut greedy);
        chains.pop_front(&mut greedy);
        assert!(!chains.push(&mut greedy, bid, 0, 1), "the total is still over half");
        for _ in 0..HELD_EACH {
            chains.pop_front(&mut other);
        }
        assert!(chains.push(&mut greedy, bid, 0, 1));
    }
}
