//! Receive buffers paused connections hold, in order, until they take
//! their input.
//!
//! A multishot receive reads ahead: everything a client has written comes
//! into ring buffers, whether or not its connection can take it (its answers
//! fill the output while the client does not read them). So a paused
//! connection keeps those buffers, chained in order through one link per
//! buffer of the ring. Its receive is cancelled when it pauses, so what it
//! holds is what the kernel read before the cancellation: a few bundle
//! completions, or a whole pipeline where bundles cannot be capped.
//!
//! How much a connection holds says nothing about its client: one that
//! pipelines a lot and reads every answer holds as much as one that never
//! reads. What tells them apart is time: a reader's answers go out, and it
//! takes up what it holds. So nothing is refused here; the worker's tick
//! cuts off a connection whose answers have not moved for a few ticks
//! ([`stalled_reader`]) while the paused connections together hold half
//! the ring or more ([`HeldBuffers::under_pressure`]), and every other
//! holder keeps its input.

use std::io;

use crate::fallible;

/// No buffer.
const NONE: u16 = u16::MAX;

/// Ticks in a row a connection may hold input with none of its sends
/// completing, while the ring is under pressure, before it is cut off (its
/// client is not reading): 1 to 1.1 s. A send completes as soon as the
/// socket takes some of it, so a client that reads at all resets the count
/// often; the patience is for one that reads in rare, small gulps.
const STALLED_TICKS: u8 = 10;

/// The tick's look at a connection: counts the ticks in a row it has held
/// input (`stalled_ticks`, set back to 0 by each send of its that
/// completes), and says whether to cut it off: it holds input its client
/// shows no sign of wanting answered, while the ring is under pressure.
pub(super) fn stalled_reader(stalled_ticks: &mut u8, holds: bool, under_pressure: bool) -> bool {
    if !holds {
        *stalled_ticks = 0;
        return false;
    }
    *stalled_ticks = stalled_ticks.saturating_add(1);
    under_pressure && *stalled_ticks > STALLED_TICKS
}

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
    /// From this `total` on (half the ring), stalled holders are cut off.
    pressure_at: usize,
}

impl HeldBuffers {
    /// The bytes a buffer of the ring takes in the chains.
    pub(super) const BYTES_PER_BUFFER: usize = size_of::<u16>() + size_of::<(u32, u32)>();

    /// Chains for a ring of `buffers` buffers (made once, at start); an
    /// error when the allocator refuses the memory (see `fallible.rs`).
    pub(super) fn new(buffers: u16) -> io::Result<HeldBuffers> {
        let count = usize::from(buffers);
        Ok(HeldBuffers {
            next: fallible::filled(count, NONE)?,
            range: fallible::filled(count, (0, 0))?,
            total: 0,
            pressure_at: count / 2,
        })
    }

    /// Half the ring or more is held: a connection that holds input
    /// without sending stands in everyone else's way.
    pub(super) fn under_pressure(&self) -> bool {
        self.total >= self.pressure_at
    }

    /// Holds buffer `bid`, from `start` to `end`, after what `held` holds.
    pub(super) fn push(&mut self, held: &mut Held, bid: u16, start: usize, end: usize) {
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
        let mut chains = HeldBuffers::new(64).expect("chains");
        let (mut a, mut b) = (Held::default(), Held::default());
        for (bid, to_a) in [(5, true), (9, false), (2, true), (7, false), (3, true)] {
            let held = if to_a { &mut a } else { &mut b };
            chains.push(held, bid, 0, 100);
        }
        chains.advance_front(&a, 40);
        assert_eq!(chains.front(&a), Some((5, 40, 100)));
        let popped: Vec<u16> = std::iter::from_fn(|| chains.pop_front(&mut a)).collect();
        assert_eq!(popped, [5, 2, 3]);
        assert!(a.is_empty() && chains.front(&a).is_none());
        assert_eq!(chains.pop_front(&mut b), Some(9));
        // Held again after emptying: a fresh chain.
        chains.push(&mut a, 11, 1, 2);
        assert_eq!(chains.front(&a), Some((11, 1, 2)));
        assert_eq!(chains.pop_front(&mut b), Some(7));
        assert_eq!(chains.pop_front(&mut a), Some(11));
        assert_eq!(chains.total, 0);
    }

    #[test]
    fn the_ring_is_under_pressure_from_half_held_whoever_holds_it() {
        let mut chains = HeldBuffers::new(256).expect("chains");
        let (mut a, mut b) = (Held::default(), Held::default());
        for bid in 0..127u16 {
            // One connection may hold most of it: nothing is refused.
            chains.push(if bid < 100 { &mut a } else { &mut b }, bid, 0, 1);
        }
        assert!(!chains.under_pressure());
        chains.push(&mut b, 127, 0, 1);
        assert!(chains.under_pressure(), "128 of 256 held");
        chains.pop_front(&mut a);
        assert!(!chains.under_pressure(), "room comes back as buffers are taken");
    }

    #[test]
    fn a_holder_is_cut_off_once_stalled_past_its_patience_and_only_under_pressure() {
        let mut ticks = 0;
        // However long it holds, no pressure: kept.
        for _ in 0..2 * STALLED_TICKS {
            assert!(!stalled_reader(&mut ticks, true, false));
        }
        assert!(stalled_reader(&mut ticks, true, true), "stalled long since");
        // A send completes (the driver sets the count back): patience again.
        ticks = 0;
        for _ in 0..STALLED_TICKS {
            assert!(!stalled_reader(&mut ticks, true, true));
        }
        assert!(stalled_reader(&mut ticks, true, true));
        // Holding nothing, it starts over.
        assert!(!stalled_reader(&mut ticks, false, true));
        assert_eq!(ticks, 0);
        assert!(!stalled_reader(&mut ticks, true, true));
    }
}
