//! `rr`: the master accepts every connection and deals it to the workers
//! strictly in turn — connection *k* to worker *k mod N* while every worker
//! keeps up — skipping a worker that cannot take one now (draining, full,
//! declining, or stalled: its batch unacknowledged past the grace, or its
//! heartbeat stale), as Node's `free` list does. A skipped worker keeps its
//! place: it gets its turn again once it catches up. Workers get no listener.

use super::{Balance, RouteFacts};
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

    /// While every route takes, the turn order is exact; a route that cannot
    /// take now is skipped without losing its turn for later. Passed over:
    /// each route skipped on the way from the cursor to the one picked (all
    /// of them when none takes), as each had its turn before that one.
    fn pick(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        for step in 0..routes.len() {
            let index = (self.next + step) % routes.len();
            if facts(routes[index]).takes() {
                self.next = index + 1;
                return Some(routes[index]);
            }
            passed_over(routes[index]);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::modes::testing::{except, pick, pick_noting, taking};
    use crate::modes::{Accepting, WorkerListener, ACK_GRACE};

    #[test]
    fn takes_turns() {
        let mut rr = RoundRobin::default();
        let routes = [4, 7, 9];
        let picks: Vec<Option<usize>> = (0..7).map(|_| pick(&mut rr, &routes, &taking)).collect();
        assert_eq!(picks, [Some(4), Some(7), Some(9), Some(4), Some(7), Some(9), Some(4)]);
        assert_eq!(pick(&mut rr, &[], &taking), None);
        // Routes shrinking keeps the cursor in range.
        assert_eq!(pick(&mut rr, &[1], &taking), Some(1));
    }

    #[test]
    fn a_busy_worker_keeps_its_turn_a_stalled_one_is_skipped_until_it_answers() {
        let mut rr = RoundRobin::default();
        let routes = [0, 1, 2];
        // Busy but keeping up: a batch awaiting its ack, more queued. Still its turn.
        let busy = except(1, |f| (f.unacked, f.queued, f.ack_wait) = (3, 40, ACK_GRACE / 2));
        let picks: Vec<Option<usize>> = (0..6).map(|_| pick(&mut rr, &routes, &busy)).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
        // Its batch unacknowledged past the grace: skipped, the others share.
        let stalled = except(1, |f| (f.unacked, f.ack_wait) = (3, ACK_GRACE + Duration::from_millis(1)));
        let picks: Vec<Option<usize>> = (0..4).map(|_| pick(&mut rr, &routes, &stalled)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        // It answered: its turn comes round again.
        assert_eq!(pick(&mut rr, &routes, &taking), Some(0));
        assert_eq!(pick(&mut rr, &routes, &taking), Some(1));
    }

    #[test]
    fn skips_a_route_that_declined_is_full_or_stale_and_comes_back_to_it() {
        let mut rr = RoundRobin::default();
        let routes = [0, 1, 2];
        let declined = except(1, |f| f.declined = true);
        let picks: Vec<Option<usize>> = (0..4).map(|_| pick(&mut rr, &routes, &declined)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(pick(&mut rr, &routes, &except(1, |f| f.live = 100)), Some(0), "full");
        assert_eq!(pick(&mut rr, &routes, &except(1, |f| f.heartbeat_age = Duration::from_secs(2))), Some(2));
        let none_take = |r| RouteFacts { declined: true, ..taking(r) };
        assert_eq!(pick(&mut rr, &routes, &none_take), None);
        assert_eq!(pick(&mut rr, &routes, &taking), Some(0), "a refused pick does not move the turn");
    }

    #[test]
    fn passed_over_are_the_routes_skipped_before_the_pick_only() {
        let mut rr = RoundRobin::default();
        let routes = [0, 1, 2, 3];
        // Every route takes: nobody is passed over.
        for _ in 0..8 {
            assert_eq!(pick_noting(&mut rr, &routes, &taking).1, []);
        }
        // Route 2 stalls: passed over only when the turn reaches it, not while
        // the others' turns come.
        let stalled = except(2, |f| (f.unacked, f.ack_wait) = (1, ACK_GRACE * 2));
        assert_eq!(pick_noting(&mut rr, &routes, &stalled), (Some(0), vec![]));
        assert_eq!(pick_noting(&mut rr, &routes, &stalled), (Some(1), vec![]));
        assert_eq!(pick_noting(&mut rr, &routes, &stalled), (Some(3), vec![2]), "its turn: skipped");
        assert_eq!(pick_noting(&mut rr, &routes, &stalled), (Some(0), vec![]));
        // Two in a row skipped: both had their turn before the one picked.
        let two = |r: usize| RouteFacts { draining: r == 1 || r == 2, ..taking(r) };
        assert_eq!(pick_noting(&mut rr, &routes, &two), (Some(3), vec![1, 2]));
        // None takes (the connection is held): every route, from the cursor on.
        let none = |r| RouteFacts { declined: true, ..taking(r) };
        assert_eq!(pick_noting(&mut rr, &routes, &none), (None, vec![0, 1, 2, 3]));
    }

    #[test]
    fn four_workers_get_a_hundred_each_of_four_hundred() {
        let mut rr = RoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            counts[pick(&mut rr, &[0, 1, 2, 3], &taking).expect("a route")] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }

    #[test]
    fn the_master_always_accepts_and_workers_get_no_listener() {
        let mut rr = RoundRobin::default();
        assert!(rr.master_accepts(&[], &taking));
        assert_eq!(rr.accepting(), Accepting::Master);
        assert!(!rr.weighs_delay(), "turns read no delay: the master need not work it out for a pick");
        assert!(matches!(rr.worker_listener(3), Ok(WorkerListener::None)));
    }
}
