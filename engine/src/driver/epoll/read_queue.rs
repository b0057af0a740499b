//! The connections whose turn of reads ended with input left: each gets
//! its next turn after this turn's events.
//!
//! Kept by slot, with a mark per slot, so it never holds more than the
//! slots allocated at start (twice that while a pass runs: a connection
//! given its turn may be queued again behind the pass). Kept by slot and
//! generation, with the mark on the connection, a slot freed and taken
//! again within one turn could be queued once per connection that held it
//! (its old pair stays, its mark went with the closed connection), and the
//! list grew past its allocation on the hot path.

use std::io;

use crate::fallible;

pub(super) struct ReadQueue {
    slots: Vec<u32>,
    queued: Box<[bool]>,
}

impl ReadQueue {
    /// Room for `slots` connections; an error when the allocator refuses it.
    pub(super) fn new(slots: usize) -> io::Result<Self> {
        Ok(ReadQueue { slots: fallible::with_capacity(2 * slots)?, queued: fallible::zeroed(slots)? })
    }

    /// The bytes each connection slot costs here.
    pub(super) const BYTES_PER_SLOT: usize = 2 * size_of::<u32>() + size_of::<bool>();

    /// Queues `slot` for a turn unless it already waits for one.
    pub(super) fn push(&mut self, slot: u32) {
        if let Some(queued) = self.queued.get_mut(slot as usize) {
            if !std::mem::replace(queued, true) {
                self.slots.push(slot);
            }
        }
    }

    /// Whether `slot` waits for a turn.
    pub(super) fn contains(&self, slot: u32) -> bool {
        self.queued.get(slot as usize).copied().unwrap_or(false)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many wait: a pass gives turns to these, and not to those queued
    /// during it.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The `i`th slot waiting, its mark cleared: whichever connection holds
    /// it now has its turn (one queued behind the pass waits for the next).
    pub(super) fn take(&mut self, i: usize) -> u32 {
        let slot = self.slots[i];
        if let Some(queued) = self.queued.get_mut(slot as usize) {
            *queued = false;
        }
        slot
    }

    /// Forgets the first `passed`, whose turns were given.
    pub(super) fn passed(&mut self, passed: usize) {
        self.slots.drain(..passed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_queued_once_however_often_it_is_pushed() {
        let mut queue = ReadQueue::new(4).unwrap();
        for _ in 0..10 {
            queue.push(2);
        }
        assert_eq!(queue.len(), 1);
        assert!(queue.contains(2) && !queue.contains(1));
    }

    #[test]
    fn never_outgrows_its_allocation_while_passes_requeue_every_slot() {
        let slots = 8;
        let mut queue = ReadQueue::new(slots).unwrap();
        let capacity = queue.slots.capacity();
        for slot in 0..slots as u32 {
            queue.push(slot);
        }
        for _ in 0..100 {
            let waiting = queue.len();
            for i in 0..waiting {
                let slot = queue.take(i);
                // The connection there (a new one, perhaps) queues again,
                // and again, during the pass.
                queue.push(slot);
                queue.push(slot);
            }
            queue.passed(waiting);
            assert_eq!(queue.len(), slots);
            assert_eq!(queue.slots.capacity(), capacity, "the queue grew");
        }
    }

    #[test]
    fn a_pass_gives_turns_only_to_those_queued_before_it() {
        let mut queue = ReadQueue::new(4).unwrap();
        queue.push(0);
        queue.push(3);
        let waiting = queue.len();
        assert_eq!(queue.take(0), 0);
        queue.push(0);
        assert_eq!(queue.take(1), 3);
        queue.passed(waiting);
        assert_eq!(queue.slots, vec![0]);
        assert!(queue.contains(0) && !queue.contains(3));
    }

    #[test]
    fn a_slot_past_the_end_is_ignored() {
        let mut queue = ReadQueue::new(2).unwrap();
        queue.push(7);
        assert!(queue.is_empty() && !queue.contains(7));
    }
}
