//! `rr` mode's choice: the workers that take connections, strictly in turn.

/// The round-robin cursor over the current routes.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The route that gets the next connection; `routes` lists the lanes that
    /// take connections now, in worker order.
    pub fn pick(&mut self, routes: &[usize]) -> Option<usize> {
        if routes.is_empty() {
            return None;
        }
        let index = self.next % routes.len();
        self.next = index + 1;
        Some(routes[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns() {
        let mut rr = RoundRobin::default();
        let routes = [4, 7, 9];
        let picks: Vec<Option<usize>> = (0..7).map(|_| rr.pick(&routes)).collect();
        assert_eq!(picks, [Some(4), Some(7), Some(9), Some(4), Some(7), Some(9), Some(4)]);
        assert_eq!(rr.pick(&[]), None);
        // Routes shrinking keeps the cursor in range.
        assert_eq!(rr.pick(&[1]), Some(1));
    }

    #[test]
    fn four_workers_get_a_hundred_each_of_four_hundred() {
        let mut rr = RoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            counts[rr.pick(&[0, 1, 2, 3]).expect("a route")] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }
}
