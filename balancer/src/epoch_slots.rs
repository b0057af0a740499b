//! A fixed table of entries, each named by its index and its epoch: the
//! epoch changes each time the entry takes a new occupant, so an id kept
//! past its occupant's end names nobody. The control socket's clients and
//! the metrics endpoint's scrapes each keep their connections in one.

/// `len` entries, each empty or holding an occupant, and their epochs.
#[derive(Debug)]
pub struct EpochSlots<T> {
    entries: Vec<Option<T>>,
    epochs: Vec<u32>,
}

impl<T> EpochSlots<T> {
    /// `len` empty entries.
    pub fn new(len: usize) -> EpochSlots<T> {
        EpochSlots { entries: (0..len).map(|_| None).collect(), epochs: vec![0; len] }
    }

    /// Every occupant.
    pub fn occupants(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }

    /// Every occupant with its index and epoch.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, &T)> {
        let epochs = &self.epochs;
        (self.entries.iter().enumerate())
            .filter_map(move |(index, entry)| entry.as_ref().map(|occupant| (index as u32, epochs[index], occupant)))
    }

    /// The occupant at `index`, if its epoch is still `epoch`.
    pub fn get_mut(&mut self, index: u32, epoch: u32) -> Option<&mut T> {
        let index = index as usize;
        if self.epochs.get(index) != Some(&epoch) {
            return None;
        }
        self.entries.get_mut(index)?.as_mut()
    }

    /// Puts `make()` in the first empty entry, under a new epoch: its index
    /// and epoch, or `None` (and `make` dropped unrun) when none is empty.
    pub fn insert(&mut self, make: impl FnOnce() -> T) -> Option<(u32, u32)> {
        let index = self.entries.iter().position(Option::is_none)?;
        self.epochs[index] = self.epochs[index].wrapping_add(1);
        self.entries[index] = Some(make());
        Some((index as u32, self.epochs[index]))
    }

    /// Empties the entry at `index`; what it held.
    pub fn take(&mut self, index: u32) -> Option<T> {
        self.entries.get_mut(index as usize)?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_occupant_only_until_the_entry_is_taken_again() {
        let mut slots = EpochSlots::new(2);
        let first = slots.insert(|| "a").expect("room");
        let second = slots.insert(|| "b").expect("room");
        assert!(slots.insert(|| "c").is_none(), "no empty entry");
        assert_eq!(slots.iter().map(|(_, _, &o)| o).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(slots.take(first.0), Some("a"));
        assert_eq!(slots.occupants().count(), 1);
        let again = slots.insert(|| "d").expect("room");
        assert_eq!(again.0, first.0, "the emptied entry is reused");
        assert_ne!(again.1, first.1, "under a new epoch");
        assert!(slots.get_mut(first.0, first.1).is_none(), "the old id names nobody");
        assert_eq!(slots.get_mut(again.0, again.1).copied(), Some("d"));
        assert_eq!(slots.get_mut(second.0, second.1).copied(), Some("b"));
        assert!(slots.get_mut(9, 1).is_none(), "out of the table");
    }
}
