//! `rr` mode's choice: workers taken strictly in turn, skipping any that
//! cannot take connections now (gone, or draining).

use crate::lanes::Lane;

/// The round-robin cursor.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The lane that gets the next connection, if any can take one.
    pub fn pick(&mut self, lanes: &[Lane]) -> Option<usize> {
        for _ in 0..lanes.len() {
            let index = self.next % lanes.len();
            self.next = index + 1;
            if lanes[index].is_routable() {
                return Some(index);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmaster_engine::channel::channel_pair;

    #[test]
    fn takes_turns_and_skips_closed_lanes() {
        let mut lanes: Vec<Lane> = (0..3).map(|_| Lane::new()).collect();
        let mut keep = Vec::new();
        for lane in [0, 2] {
            let (master, worker) = channel_pair().expect("socketpair");
            lanes[lane].open(master);
            keep.push(worker);
        }
        let mut rr = RoundRobin::default();
        let picks: Vec<Option<usize>> = (0..4).map(|_| rr.pick(&lanes)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        let mut none: Vec<Lane> = vec![Lane::new()];
        assert_eq!(rr.pick(&none), None);
        none.clear();
    }
}
