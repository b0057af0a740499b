//! `rr`: the master accepts every connection and deals it to the workers
//! strictly in turn, skipping any that declined connections lately; workers
//! get no listener.

use super::{Balance, RouteFacts, WorkerListener};
use crate::config::Mode;

/// The round-robin cursor over the current routes.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Balance for RoundRobin {
    fn mode(&self) -> Mode {
        Mode::RoundRobin
    }

    fn worker_listener(&self, _slot: usize) -> WorkerListener {
        WorkerListener::None
    }

    fn master_accepts(&self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        true
    }

    /// While every route takes, the turn order is exact; a route that cannot
    /// take now is skipped without losing its turn for later.
    fn pick(&mut self, routes: &[usize], facts: &dyn Fn(usize) -> RouteFacts) -> Option<usize> {
        for step in 0..routes.len() {
            let index = (self.next + step) % routes.len();
            if !facts(routes[index]).declined {
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

    fn taking(_slot: usize) -> RouteFacts {
        RouteFacts { max_conns: 10, ..RouteFacts::default() }
    }

    fn declining(slot: usize) -> impl Fn(usize) -> RouteFacts {
        move |r| RouteFacts { declined: r == slot, ..taking(r) }
    }

    #[test]
    fn takes_turns() {
        let mut rr = RoundRobin::default();
        let routes = [4, 7, 9];
        let picks: Vec<Option<usize>> = (0..7).map(|_| rr.pick(&routes, &taking)).collect();
        assert_eq!(picks, [Some(4), Some(7), Some(9), Some(4), Some(7), Some(9), Some(4)]);
        assert_eq!(rr.pick(&[], &taking), None);
        // Routes shrinking keeps the cursor in range.
        assert_eq!(rr.pick(&[1], &taking), Some(1));
    }

    #[test]
    fn skips_a_route_that_declined_and_comes_back_to_it() {
        let mut rr = RoundRobin::default();
        let routes = [0, 1, 2];
        let picks: Vec<Option<usize>> = (0..4).map(|_| rr.pick(&routes, &declining(1))).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(rr.pick(&routes, &taking), Some(0));
        let all_declined = |r| RouteFacts { declined: true, ..taking(r) };
        assert_eq!(rr.pick(&routes, &all_declined), None);
        assert_eq!(rr.pick(&routes, &taking), Some(1), "a refused pick does not move the turn");
    }

    #[test]
    fn four_workers_get_a_hundred_each_of_four_hundred() {
        let mut rr = RoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            counts[rr.pick(&[0, 1, 2, 3], &taking).expect("a route")] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }

    #[test]
    fn the_master_always_accepts_and_workers_get_no_listener() {
        let rr = RoundRobin::default();
        assert!(rr.master_accepts(&[], &taking));
        assert_eq!(rr.worker_listener(3), WorkerListener::None);
    }
}
