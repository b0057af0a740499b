//! The worker's idle keep-alive connections, longest idle first: an
//! intrusive list through arrays indexed by slot, sized at start, so noting
//! a connection's idleness and finding the oldest never allocate. A full
//! worker closes the oldest to make room for a new connection (as nginx
//! reuses its "reusable" connections when its free list is empty), but
//! only one idle for [`MIN_IDLE_MS`] or more: a client that is using its
//! connection keeps it (under overload by such clients, new ones get `503`
//! rather than each taking another's connection).

use std::io;

use crate::fallible;

/// No slot: the end of the list.
const NIL: u32 = u32::MAX;

/// How long a connection must have been idle before a full worker closes it
/// for a new one (as long as a drain keeps one answered a moment ago).
pub(super) const MIN_IDLE_MS: u64 = crate::conn::DRAIN_RECENT_MS;

/// Slots of idle connections in the order they became idle.
#[derive(Debug)]
pub(super) struct IdleList {
    prev: Box<[u32]>,
    next: Box<[u32]>,
    /// When each listed connection became idle (its idle timer's start):
    /// a connection idle again since is moved to the back.
    since: Box<[u64]>,
    listed: Box<[bool]>,
    /// Idle for [`MIN_IDLE_MS`] at the last [`IdleList::advance`]: the
    /// listed ones before `aged_until`, a prefix of the list.
    aged: Box<[bool]>,
    /// The first listed slot not aged yet (`NIL`: all are).
    aged_until: u32,
    aged_len: usize,
    head: u32,
    tail: u32,
}

impl IdleList {
    /// The bytes a slot takes in the list.
    pub(super) const BYTES_PER_SLOT: usize = 2 * size_of::<u32>() + size_of::<u64>() + 2 * size_of::<bool>();

    /// A list for slots `0..slots`; an error when the allocator refuses
    /// the memory (see `fallible.rs`).
    pub(super) fn new(slots: usize) -> io::Result<IdleList> {
        Ok(IdleList {
            prev: fallible::filled(slots, NIL)?,
            next: fallible::filled(slots, NIL)?,
            since: fallible::zeroed(slots)?,
            listed: fallible::zeroed(slots)?,
            aged: fallible::zeroed(slots)?,
            aged_until: NIL,
            aged_len: 0,
            head: NIL,
            tail: NIL,
        })
    }

    /// Idle connections listed that have been idle for [`MIN_IDLE_MS`].
    pub(super) fn aged_len(&self) -> usize {
        self.aged_len
    }

    /// Marks aged the connections idle since `now - MIN_IDLE_MS` or before.
    pub(super) fn advance(&mut self, now: u64) {
        let boundary = now.saturating_sub(MIN_IDLE_MS);
        while self.aged_until != NIL && self.since[self.aged_until as usize] <= boundary {
            let i = self.aged_until as usize;
            self.aged[i] = true;
            self.aged_len += 1;
            self.aged_until = self.next[i];
        }
    }

    /// Notes what slot `slot` is now: idle since `since` (listed, at the back
    /// when it was not, or became idle again since), or not idle (unlisted).
    pub(super) fn note(&mut self, slot: u32, idle: bool, since: u64) {
        let i = slot as usize;
        if i >= self.listed.len() {
            return;
        }
        if !idle {
            self.remove(slot);
            return;
        }
        if self.listed[i] {
            if self.since[i] == since {
                return;
            }
            self.remove(slot);
        }
        self.since[i] = since;
        self.listed[i] = true;
        self.aged[i] = false;
        if self.aged_until == NIL {
            self.aged_until = slot;
        }
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        match self.tail {
            NIL => self.head = slot,
            tail => self.next[tail as usize] = slot,
        }
        self.tail = slot;
    }

    /// Unlists slot `slot` (it is busy again, or closed).
    pub(super) fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if i >= self.listed.len() || !self.listed[i] {
            return;
        }
        let (prev, next) = (self.prev[i], self.next[i]);
        if self.aged[i] {
            self.aged[i] = false;
            self.aged_len -= 1;
        }
        if self.aged_until == slot {
            self.aged_until = next;
        }
        match prev {
            NIL => self.head = next,
            p => self.next[p as usize] = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.prev[n as usize] = prev,
        }
        self.listed[i] = false;
    }

    /// The slot idle longest, if any, once it is aged (still listed).
    pub(super) fn oldest(&self) -> Option<u32> {
        (self.head != NIL && self.aged[self.head as usize]).then_some(self.head)
    }
}

/// Idle connections a full worker closes at once when connections wait on
/// its listener and its ring's table of descriptors has no room to accept
/// them: a small share of what it holds, like nginx's 32 of thousands.
pub(super) fn reclaim_batch(capacity: usize) -> usize {
    (capacity / 16).clamp(1, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Later than every `since` the tests use, by more than `MIN_IDLE_MS`.
    const LATER: u64 = 1_000_000;

    fn drain(list: &mut IdleList) -> Vec<u32> {
        list.advance(LATER);
        let mut order = Vec::new();
        while let Some(slot) = list.oldest() {
            order.push(slot);
            list.remove(slot);
        }
        order
    }

    #[test]
    fn the_longest_idle_comes_first() {
        let mut list = IdleList::new(8).expect("a list");
        list.note(3, true, 10);
        list.note(1, true, 20);
        list.note(5, true, 30);
        list.advance(LATER);
        assert_eq!((list.oldest(), list.aged_len()), (Some(3), 3));
        assert_eq!(drain(&mut list), vec![3, 1, 5]);
        assert_eq!(list.aged_len(), 0);
        assert_eq!(list.oldest(), None);
    }

    #[test]
    fn noting_the_same_idleness_again_keeps_the_place() {
        let mut list = IdleList::new(4).expect("a list");
        list.note(0, true, 10);
        list.note(1, true, 20);
        list.note(0, true, 10);
        assert_eq!(drain(&mut list), vec![0, 1]);
    }

    #[test]
    fn a_connection_idle_again_goes_to_the_back() {
        let mut list = IdleList::new(4).expect("a list");
        list.note(0, true, 10);
        list.note(1, true, 20);
        list.note(2, true, 30);
        // Slot 0 answered another request and is idle again since 40.
        list.note(0, true, 40);
        assert_eq!(drain(&mut list), vec![1, 2, 0]);
    }

    #[test]
    fn a_busy_or_closed_connection_leaves_the_list() {
        let mut list = IdleList::new(4).expect("a list");
        list.note(0, true, 10);
        list.note(1, true, 20);
        list.note(2, true, 30);
        list.note(1, false, 0);
        list.remove(2);
        list.remove(2);
        list.note(3, false, 0);
        list.advance(LATER);
        assert_eq!(list.aged_len(), 1);
        assert_eq!(drain(&mut list), vec![0]);
        // Unlinked from the middle and the ends alike: the list is whole again.
        list.note(2, true, 50);
        list.note(0, true, 60);
        assert_eq!(drain(&mut list), vec![2, 0]);
    }

    #[test]
    fn only_a_connection_idle_long_enough_is_offered() {
        let mut list = IdleList::new(8).expect("a list");
        list.note(0, true, 1_000);
        list.note(1, true, 1_400);
        list.note(2, true, 1_900);
        list.advance(1_000 + MIN_IDLE_MS - 1);
        assert_eq!((list.oldest(), list.aged_len()), (None, 0), "none idle long enough yet");
        list.advance(1_400 + MIN_IDLE_MS);
        assert_eq!((list.oldest(), list.aged_len()), (Some(0), 2));
        // Busy again, or closed: no longer counted; one idle again starts over.
        list.note(0, false, 0);
        assert_eq!((list.oldest(), list.aged_len()), (Some(1), 1));
        list.note(1, true, 2_500);
        assert_eq!((list.oldest(), list.aged_len()), (None, 0), "slot 2 is next, not aged yet");
        list.advance(2_500 + MIN_IDLE_MS);
        assert_eq!(drain(&mut list), vec![2, 1]);
        assert_eq!(list.aged_len(), 0);
        // A slot removed where aging had stopped moves the mark on.
        list.note(3, true, 5_000);
        list.note(4, true, 5_100);
        list.remove(3);
        list.advance(5_100 + MIN_IDLE_MS);
        assert_eq!((list.oldest(), list.aged_len()), (Some(4), 1));
    }

    #[test]
    fn the_batch_is_a_small_share() {
        assert_eq!(reclaim_batch(4), 1);
        assert_eq!(reclaim_batch(320), 20);
        assert_eq!(reclaim_batch(16384), 32);
    }
}
