//! A fixed-capacity slab: every slot is made at start, taking and giving back
//! a slot never allocates, and each slot carries a generation that changes
//! when it is given back.

use std::io;

use crate::token::GEN_MASK;

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    occupied: bool,
    value: T,
}

/// Slots of `T`, addressed by index and generation.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Box<[Entry<T>]>,
    free: Vec<u32>,
    /// One past the highest slot ever handed out: scans stop here. Freed slots
    /// are reused first (the free list is a stack), so this stays near the
    /// peak number of connections, not the capacity.
    high_water: usize,
}

impl<T> Slab<T> {
    /// The bytes a slot takes: its entry, and its place in the free list.
    pub const BYTES_PER_SLOT: usize = size_of::<Entry<T>>() + size_of::<u32>();

    /// A slab of `capacity` slots, each made by `make`; an error when the
    /// allocator refuses the memory (see `fallible.rs`).
    pub fn new(capacity: usize, mut make: impl FnMut() -> T) -> io::Result<Self> {
        let mut entries = crate::fallible::with_capacity(capacity)?;
        entries.extend((0..capacity).map(|_| Entry { generation: 0, occupied: false, value: make() }));
        let mut free = crate::fallible::with_capacity(capacity)?;
        // Reversed so slot 0 is handed out first (low slots stay warm in cache).
        free.extend((0..capacity as u32).rev());
        Ok(Slab { entries: entries.into_boxed_slice(), free, high_water: 0 })
    }

    /// Takes a free slot; its index and generation, or `None` when full.
    pub fn insert(&mut self) -> Option<(u32, u32)> {
        let index = self.free.pop()?;
        self.high_water = self.high_water.max(index as usize + 1);
        let entry = &mut self.entries[index as usize];
        entry.occupied = true;
        Some((index, entry.generation))
    }

    /// The value in an occupied slot of this generation.
    pub fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        match self.entries.get_mut(index as usize) {
            Some(entry) if entry.occupied && entry.generation == generation => Some(&mut entry.value),
            _ => None,
        }
    }

    /// The generation of slot `index` if it is occupied.
    pub fn generation(&self, index: u32) -> Option<u32> {
        self.entries.get(index as usize).filter(|e| e.occupied).map(|e| e.generation)
    }

    /// Gives a slot back; its generation moves on so old tokens no longer match.
    pub fn remove(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        if entry.occupied {
            entry.occupied = false;
            entry.generation = (entry.generation + 1) & GEN_MASK;
            self.free.push(index);
        }
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Free slots.
    pub fn vacant(&self) -> usize {
        self.free.len()
    }

    /// Slots below this index are the only ones that were ever occupied.
    pub fn high_water(&self) -> u32 {
        self.high_water as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_has_a_new_generation() {
        let mut slab = Slab::new(2, || 0u8).expect("a slab");
        let (a, gen_a) = slab.insert().expect("slot");
        let (_b, _) = slab.insert().expect("slot");
        assert!(slab.insert().is_none());
        slab.remove(a);
        let (again, gen_again) = slab.insert().expect("slot");
        assert_eq!(again, a);
        assert_ne!(gen_again, gen_a);
        assert!(slab.get_mut(a, gen_a).is_none());
        assert!(slab.get_mut(a, gen_again).is_some());
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.high_water(), 2);
    }

    #[test]
    fn freed_slots_are_reused_first_so_scans_stay_short() {
        let mut slab = Slab::new(1000, || 0u8).expect("a slab");
        for _ in 0..100 {
            let (a, _) = slab.insert().expect("slot");
            let (b, _) = slab.insert().expect("slot");
            slab.remove(a);
            slab.remove(b);
        }
        assert_eq!(slab.high_water(), 2);
    }
}
