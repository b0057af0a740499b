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
//! cuts off a connection whose client has shown no sign of reading for
//! a second or more ([`Stall::on_tick`], [`Stall::judge`]) while the paused
//! connections together hold half the ring or more
//! ([`HeldBuffers::under_pressure`]), and every other holder keeps its input.

use std::io;

use crate::fallible;

/// No buffer.
const NONE: u16 = u16::MAX;

/// Ticks in a row a connection may hold input with no sign that its client
/// reads, while the ring is under pressure, before the kernel is asked
/// whether it does: 1 to 1.1 s.
const STALLED_TICKS: u8 = 10;

/// The tick's record of a connection that holds input: how long its client
/// has shown no sign of reading.
///
/// A send's completion is such a sign, but not a prompt one: a send on a
/// full socket completes only once the socket is writable again, which
/// Linux calls it only when about a third of its send buffer is free
/// (`sk_stream_min_wspace`). On loopback that buffer grows to 4 MiB, so a
/// client reading 1.25 MiB a second saw none complete for over a second
/// and was cut off while it read (until 2026-12-06). So a connection
/// suspected (no send completed for the patience) is looked at once more:
/// its bytes the client's kernel has not acknowledged
/// ([`crate::sys::socket::unacknowledged`]), which fall as the client reads
/// (its kernel opens the window again and takes more). While that number
/// moves from one look to the next, a patience apart, the connection is
/// kept; the first look only sets the mark, so a client that reads nothing
/// is cut off after two patiences. On loopback the window opens in steps of
/// about 93 KiB: a client reading 120 KiB a second was kept, 80 cut off. A
/// direct descriptor has no number for the ioctl: it is asked through the
/// ring (`SOCKET_URING_OP_SIOCOUTQ`, Linux 6.7), the answer judged when it
/// comes, and it cuts off only while the connection still holds input and
/// the ring is still under pressure (until 2026-12-06 the tick's view of
/// both, a turn or more old by then, stood); where the kernel refuses that
/// op, the send's silence alone decides, as before.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stall {
    /// Ticks in a row it has held input with no sign of its client reading.
    ticks: u8,
    /// Its unacknowledged bytes at the last look, since the last sign.
    unacknowledged: Option<u32>,
    /// The kernel was asked through the ring; its answer is on the way.
    asking: bool,
}

/// What the tick makes of a holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Suspicion {
    /// Nothing to do.
    None,
    /// Ask the kernel how many of its bytes are unacknowledged, and give the
    /// answer to [`Stall::judge`].
    Ask,
}

impl Stall {
    /// A send of its completed: its client reads.
    pub(super) fn sent(&mut self) {
        *self = Stall::default();
    }

    /// The tick's look: counts the ticks it has held input with no sign of
    /// its client reading, and asks for a look at the kernel's count once
    /// that passes the patience while the ring is under pressure.
    pub(super) fn on_tick(&mut self, holds: bool, under_pressure: bool) -> Suspicion {
        if !holds {
            *self = Stall::default();
            return Suspicion::None;
        }
        if self.asking {
            return Suspicion::None;
        }
        self.ticks = self.ticks.saturating_add(1);
        if !under_pressure || self.ticks <= STALLED_TICKS {
            return Suspicion::None;
        }
        Suspicion::Ask
    }

    /// The kernel's answer is on its way through the ring.
    pub(super) fn asked(&mut self) {
        self.asking = true;
    }

    /// The kernel's count of its unacknowledged bytes (`None`: it cannot
    /// tell, which cuts it off, as a send's silence alone did before), read
    /// at the tick's own look; says whether to cut it off.
    pub(super) fn judge(&mut self, unacknowledged: Option<u32>) -> bool {
        let moved = unacknowledged.is_some() && unacknowledged != self.unacknowledged;
        if moved {
            // The client took bytes since the last look (or this is the
            // first): patience again, from this mark.
            self.unacknowledged = unacknowledged;
            self.ticks = 0;
        }
        !moved
    }

    /// [`Stall::judge`] for the count asked through the ring, which comes a
    /// turn or more after the tick's look. It is moot after a sign of
    /// reading (a send completed meanwhile), and it cuts nothing off once the
    /// connection holds no input or the ring is no longer under pressure:
    /// what the tick saw then may have passed by the time it comes (it still
    /// sets the mark, and the tick asks again while both hold).
    pub(super) fn judge_answer(&mut self, unacknowledged: Option<u32>, holds: bool, under_pressure: bool) -> bool {
        if !std::mem::take(&mut self.asking) {
            return false;
        }
        self.judge(unacknowledged) && holds && under_pressure
    }

    /// [`Stall::on_tick`] and, when it asks, [`Stall::judge`] at once, with
    /// `unacknowledged` asking the kernel directly.
    #[cfg(test)]
    fn stalled_reader(
        &mut self,
        holds: bool,
        under_pressure: bool,
        unacknowledged: impl FnOnce() -> Option<u32>,
    ) -> bool {
        self.on_tick(holds, under_pressure) == Suspicion::Ask && self.judge(unacknowledged())
    }
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
        let mut stall = Stall::default();
        let never = || -> Option<u32> { panic!("the kernel is asked only of a suspect") };
        // However long it holds, no pressure: kept, and the kernel not asked.
        for _ in 0..2 * STALLED_TICKS {
            assert!(!stall.stalled_reader(true, false, never));
        }
        // Suspected long since: the first look sets the mark, the next one a
        // patience later finds the same count and cuts it off.
        assert!(!stall.stalled_reader(true, true, || Some(5000)), "the first look is only a mark");
        for _ in 0..STALLED_TICKS {
            assert!(!stall.stalled_reader(true, true, never));
        }
        assert!(stall.stalled_reader(true, true, || Some(5000)), "nothing taken in a patience");
        // A send completes: patience again, and a new mark.
        stall.sent();
        for _ in 0..STALLED_TICKS {
            assert!(!stall.stalled_reader(true, true, never));
        }
        assert!(!stall.stalled_reader(true, true, || Some(5000)));
        // Holding nothing, it starts over.
        assert!(!stall.stalled_reader(false, true, never));
        assert_eq!(stall.ticks, 0);
        assert!(!stall.stalled_reader(true, true, never));
    }

    #[test]
    fn a_suspect_whose_client_takes_bytes_is_kept_and_one_the_kernel_cannot_tell_is_cut() {
        let mut stall = Stall::default();
        let suspect = |stall: &mut Stall, unacknowledged: Option<u32>| {
            for _ in 0..STALLED_TICKS {
                assert!(!stall.stalled_reader(true, true, || panic!("not suspected yet")));
            }
            stall.stalled_reader(true, true, || unacknowledged)
        };
        assert!(!suspect(&mut stall, Some(900_000)), "the mark");
        // No send completes, but the count falls: the client reads.
        for left in [850_000, 600_000, 599_999] {
            assert!(!suspect(&mut stall, Some(left)), "it took bytes, down to {left}");
        }
        assert!(suspect(&mut stall, Some(599_999)), "then nothing for a patience");
        // A socket the kernel cannot be asked about: cut at the first suspicion.
        let mut stall = Stall::default();
        assert!(suspect(&mut stall, None));
    }

    /// Ticks a holder under pressure until it is suspected, and asks the
    /// ring about it.
    fn suspect_and_ask(stall: &mut Stall) {
        for _ in 0..STALLED_TICKS {
            assert_eq!(stall.on_tick(true, true), Suspicion::None);
        }
        assert_eq!(stall.on_tick(true, true), Suspicion::Ask);
        stall.asked();
        // No second question while the first is out.
        assert_eq!(stall.on_tick(true, true), Suspicion::None);
    }

    #[test]
    fn an_answer_through_the_ring_is_moot_once_a_send_completed_meanwhile() {
        let mut stall = Stall::default();
        suspect_and_ask(&mut stall);
        assert!(!stall.judge_answer(Some(7000), true, true), "the mark");
        suspect_and_ask(&mut stall);
        stall.sent();
        assert!(!stall.judge_answer(Some(7000), true, true), "a send completed since the question");
        suspect_and_ask(&mut stall);
        assert!(!stall.judge_answer(Some(7000), true, true), "a new mark after the send");
        suspect_and_ask(&mut stall);
        assert!(stall.judge_answer(Some(7000), true, true), "nothing taken in a patience");
        let mut stall = Stall::default();
        suspect_and_ask(&mut stall);
        assert!(stall.judge_answer(None, true, true), "the ring op failed: the old rule");
    }

    #[test]
    fn an_answer_through_the_ring_cuts_nothing_once_the_pressure_or_the_input_is_gone() {
        let mut stall = Stall::default();
        suspect_and_ask(&mut stall);
        assert!(!stall.judge_answer(Some(7000), true, true), "the mark");
        suspect_and_ask(&mut stall);
        assert!(!stall.judge_answer(Some(7000), true, false), "the ring had room again by the answer");
        // Still past its patience, and the pressure is back: asked again at once.
        assert_eq!(stall.on_tick(true, true), Suspicion::Ask);
        stall.asked();
        assert!(!stall.judge_answer(Some(7000), false, true), "its input was taken by the answer");
        assert_eq!(stall.on_tick(true, true), Suspicion::Ask);
        stall.asked();
        assert!(stall.judge_answer(Some(7000), true, true), "both still hold, nothing taken: cut off");
    }
}
