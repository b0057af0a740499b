//! `rr` mode's choice: the workers that take connections, strictly in turn,
//! skipping any that cannot take one now.

/// The round-robin cursor over the current routes.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The route that gets the next connection; `routes` lists the lanes that
    /// take connections now, in worker order, and `takes` says whether one can
    /// take a connection at this moment. While every route takes, the turn
    /// order is exact; `None` when no route takes.
    pub fn pick(&mut self, routes: &[usize], takes: impl Fn(usize) -> bool) -> Option<usize> {
        for step in 0..routes.len() {
            let index = (self.next + step) % routes.len();
            if takes(routes[index]) {
                self.next = index + 1;
                return Some(routes[index]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns() {
        let mut rr = RoundRobin::default();
        let routes = [4, 7, 9];
        let picks: Vec<Option<usize>> = (0..7).map(|_| rr.pick(&routes, |_| true)).collect();
        assert_eq!(picks, [Some(4), Some(7), Some(9), Some(4), Some(7), Some(9), Some(4)]);
        assert_eq!(rr.pick(&[], |_| true), None);
        // Routes shrinking keeps the cursor in range.
        assert_eq!(rr.pick(&[1], |_| true), Some(1));
    }

    #[test]
    fn skips_a_route_that_cannot_take_and_comes_back_to_it() {
        let mut rr = RoundRobin::default();
        let routes = [0, 1, 2];
        let picks: Vec<Option<usize>> = (0..4).map(|_| rr.pick(&routes, |r| r != 1)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(rr.pick(&routes, |_| true), Some(0));
        assert_eq!(rr.pick(&routes, |_| false), None);
        assert_eq!(rr.pick(&routes, |_| true), Some(1), "a refused pick does not move the turn");
    }

    #[test]
    fn four_workers_get_a_hundred_each_of_four_hundred() {
        let mut rr = RoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            counts[rr.pick(&[0, 1, 2, 3], |_| true).expect("a route")] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }
}
