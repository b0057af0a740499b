//! `least`: the master accepts every connection and gives it to the worker
//! with the fewest outstanding connections — live (its stats slot), handed
//! over and not yet acknowledged, and queued in the master for it — among
//! those that can take one now (not draining, full, declining or stalled);
//! ties go in turn, so equal workers are dealt to as `rr` deals. A slow or
//! stalled worker's count stops falling, so new connections flow around it.
//!
//! Above [`TWO_CHOICES_ABOVE`] workers the pick is power-of-two-choices over
//! the same numbers (HAProxy's `random(2)`, Envoy's `LEAST_REQUEST` with
//! `choice_count` 2): two workers drawn at random, the less loaded one wins.
//! That reads two stats slots per connection instead of every one (each a
//! cache line its worker writes every loop turn) and still lands within a
//! connection or two of the least loaded worker. Workers get no listener.
//!
//! A route is passed over at a pick when it cannot take and would have
//! been preferred to the one picked: fewer outstanding, or as many and
//! earlier in turn (with two choices: drawn, and no more outstanding than
//! the winner); every route that cannot take, when none can.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Balance, RouteFacts};
use crate::config::Mode;

/// Above this many routes, two random choices replace the full scan.
pub const TWO_CHOICES_ABOVE: usize = 8;
/// Pairs of draws two choices make before they settle for fewer than two
/// routes that take (and scan, if none).
const DRAWS: usize = 4;

/// The tie-breaking cursor and the random draws of two choices.
#[derive(Debug)]
pub struct Least {
    next: usize,
    rng: u64,
}

impl Default for Least {
    fn default() -> Least {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Least::with_seed(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }
}

impl Least {
    /// A `least` whose random draws start from `seed`.
    pub fn with_seed(seed: u64) -> Least {
        Least { next: 0, rng: seed | 1 }
    }

    /// A number below `n` (xorshift64*; `n` is at most the slot count).
    fn draw(&mut self, n: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (((x >> 32) * n as u64) >> 32) as usize
    }

    /// The index of the route with the fewest outstanding connections among
    /// those that take, the first in turn order from the cursor on a tie.
    /// Passed over: each route that does not take and ranks ahead of it
    /// (fewer outstanding, or as many and earlier in turn); every route
    /// that does not take, when none does.
    fn scan(
        &self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        // (index, outstanding, steps from the cursor)
        let mut best: Option<(usize, u64, usize)> = None;
        let mut all_take = true;
        for step in 0..routes.len() {
            let index = (self.next + step) % routes.len();
            let route = facts(routes[index]);
            if !route.takes() {
                all_take = false;
            } else if best.is_none_or(|(_, load, _)| route.outstanding() < load) {
                best = Some((index, route.outstanding(), step));
            }
        }
        if !all_take {
            // Only while some worker lags, is full or drains: the second look
            // keeps the common pass to one read of each worker's facts.
            for step in 0..routes.len() {
                let index = (self.next + step) % routes.len();
                let route = facts(routes[index]);
                if !route.takes() && best.is_none_or(|(_, load, at)| (route.outstanding(), step) < (load, at)) {
                    passed_over(routes[index]);
                }
            }
        }
        best.map(|(index, _, _)| index)
    }

    /// Two distinct routes that take, drawn at random: the one with fewer
    /// outstanding wins. `None` when the draws found none that takes (the
    /// scan that follows then tells who was passed over). Passed over: each
    /// route drawn that does not take and has no more outstanding than the
    /// winner (the draws have no turn order to rank a tie by).
    fn two_choices(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        // Routes drawn that do not take, each once: (index, outstanding).
        let mut not_taking = [(0usize, 0u64); 2 * DRAWS];
        let mut not_taking_len = 0;
        let mut compared = 0;
        for _ in 0..2 * DRAWS {
            let index = self.draw(routes.len());
            if best.is_some_and(|(chosen, _)| chosen == index) {
                continue;
            }
            let route = facts(routes[index]);
            if !route.takes() {
                if !not_taking[..not_taking_len].iter().any(|&(seen, _)| seen == index) {
                    not_taking[not_taking_len] = (index, route.outstanding());
                    not_taking_len += 1;
                }
                continue;
            }
            if best.is_none_or(|(_, load)| route.outstanding() < load) {
                best = Some((index, route.outstanding()));
            }
            compared += 1;
            if compared == 2 {
                break;
            }
        }
        let (chosen, load) = best?;
        for &(index, outstanding) in &not_taking[..not_taking_len] {
            if outstanding <= load {
                passed_over(routes[index]);
            }
        }
        Some(chosen)
    }
}

impl Balance for Least {
    fn mode(&self) -> Mode {
        Mode::Least
    }

    fn pick(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        let chosen = if routes.len() > TWO_CHOICES_ABOVE { self.two_choices(routes, facts, passed_over) } else { None };
        let index = chosen.or_else(|| self.scan(routes, facts, passed_over))?;
        self.next = index + 1;
        Some(routes[index])
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::modes::testing::{except, live, pick, pick_noting, taking};
    use crate::modes::ACK_GRACE;

    #[test]
    fn the_fewest_outstanding_wins_and_ties_go_in_turn() {
        let mut least = Least::with_seed(1);
        assert_eq!(pick(&mut least, &[0, 1, 2], &live(&[5, 2, 9])), Some(1));
        // Handed-over and queued connections count as much as live ones.
        let queued = |r| RouteFacts { queued: [0, 4, 0][r], unacked: [3, 0, 0][r], ..live(&[0, 0, 2])(r) };
        assert_eq!(pick(&mut least, &[0, 1, 2], &queued), Some(2));
        let mut least = Least::with_seed(1);
        let picks: Vec<Option<usize>> = (0..6).map(|_| pick(&mut least, &[3, 5, 8], &taking)).collect();
        assert_eq!(picks, [Some(3), Some(5), Some(8), Some(3), Some(5), Some(8)], "equal loads: in turn");
        assert_eq!(pick(&mut least, &[], &taking), None);
    }

    #[test]
    fn a_stalled_worker_with_fewer_connections_is_passed_over() {
        let mut least = Least::with_seed(1);
        // Its count is frozen low (it stopped serving): the batch it does not
        // acknowledge marks it stalled, and nothing more goes there.
        let stalled = except(0, |f| (f.unacked, f.ack_wait) = (1, ACK_GRACE + Duration::from_millis(5)));
        let busy = |r| RouteFacts { live: [0, 50][r], ..stalled(r) };
        assert_eq!(pick(&mut least, &[0, 1], &busy), Some(1));
        assert_eq!(pick(&mut least, &[0, 1], &except(0, |f| f.draining = true)), Some(1));
        let none = |r| RouteFacts { declined: true, ..taking(r) };
        assert_eq!(pick(&mut least, &[0, 1], &none), None);
    }

    #[test]
    fn passed_over_are_those_that_cannot_take_and_would_have_won() {
        let mut least = Least::with_seed(1);
        let routes = [0, 1, 2];
        // Every route takes: nobody is passed over.
        assert_eq!(pick_noting(&mut least, &routes, &live(&[3, 1, 2])), (Some(1), vec![]));
        // Route 0 lags with the fewest: passed over for route 2.
        let lagging_low = |r: usize| RouteFacts {
            live: [0, 5, 2][r],
            ack_wait: [ACK_GRACE * 2, Duration::ZERO, Duration::ZERO][r],
            ..taking(r)
        };
        assert_eq!(pick_noting(&mut least, &routes, &lagging_low), (Some(2), vec![0]));
        // Route 1 lags with more than the one picked: it would not have had it anyway.
        let lagging_high = except(1, |f| (f.live, f.ack_wait) = (9, ACK_GRACE * 2));
        assert_eq!(pick_noting(&mut least, &routes, &lagging_high).1, []);
        // A tie goes in turn: one that cannot take ranks ahead only when its turn comes first.
        let mut least = Least::with_seed(1);
        let draining_1 = except(1, |f| f.draining = true);
        assert_eq!(pick_noting(&mut least, &routes, &draining_1), (Some(0), vec![]), "0 is first in turn");
        assert_eq!(pick_noting(&mut least, &routes, &draining_1), (Some(2), vec![1]), "1 is before 2");
        // None takes (the connection is held): every route, from the cursor on.
        let none = |r| RouteFacts { declined: true, ..taking(r) };
        assert_eq!(pick_noting(&mut least, &routes, &none), (None, vec![0, 1, 2]));
    }

    #[test]
    fn two_choices_pass_over_only_routes_drawn_and_no_more_loaded_than_the_winner() {
        let routes: Vec<usize> = (0..16).collect();
        // Route 7 lags with nothing; route 3 lags with a thousand.
        let facts = |r: usize| RouteFacts {
            live: if r == 3 {
                1_000
            } else if r == 7 {
                0
            } else {
                10
            },
            ack_wait: if r == 3 || r == 7 { ACK_GRACE * 2 } else { Duration::ZERO },
            ..taking(r)
        };
        let mut least = Least::with_seed(42);
        let mut passed = [0u32; 16];
        for _ in 0..1_000 {
            let (picked, over) = pick_noting(&mut least, &routes, &facts);
            assert!(picked.is_some_and(|p| p != 3 && p != 7));
            let mut seen = over.clone();
            seen.dedup();
            assert_eq!(seen, over, "each route once per pick");
            for r in over {
                passed[r] += 1;
            }
        }
        assert_eq!(passed.iter().enumerate().filter(|&(r, &n)| n > 0 && r != 7).count(), 0, "{passed:?}");
        // Drawn in about 2 of 16 routes' worth of picks: often, not always.
        assert!((50..500).contains(&passed[7]), "{passed:?}");
    }

    #[test]
    fn under_unequal_load_the_counts_converge() {
        // Worker 0 holds 30 long connections; new ones go to 1 until it has as many.
        let live = RefCell::new([30u64, 0]);
        let facts = |r: usize| RouteFacts { live: live.borrow()[r], ..taking(r) };
        let mut least = Least::with_seed(7);
        for _ in 0..40 {
            let picked = pick(&mut least, &[0, 1], &facts).expect("a route");
            live.borrow_mut()[picked] += 1;
        }
        assert_eq!(*live.borrow(), [35, 35]);
    }

    #[test]
    fn two_choices_above_eight_workers_avoid_the_loaded_and_the_stalled() {
        let routes: Vec<usize> = (0..16).collect();
        let live = RefCell::new([0u64; 16]);
        live.borrow_mut()[3] = 1_000;
        let facts = |r: usize| RouteFacts {
            live: live.borrow()[r],
            max_conns: 100_000,
            heartbeat_age: if r == 7 { Duration::from_secs(5) } else { Duration::ZERO },
            ..RouteFacts::default()
        };
        let mut least = Least::with_seed(42);
        for _ in 0..1_500 {
            let picked = pick(&mut least, &routes, &facts).expect("a route");
            assert_ne!(picked, 7, "stalled");
            live.borrow_mut()[picked] += 1;
        }
        let counts = *live.borrow();
        let others: Vec<u64> = counts.iter().enumerate().filter(|&(r, _)| r != 3 && r != 7).map(|(_, &c)| c).collect();
        assert!(counts[3] <= 1_002, "the loaded worker got hardly any: {counts:?}");
        let (min, max) = (others.iter().min().unwrap(), others.iter().max().unwrap());
        assert!(max - min <= 6, "two choices keep the others within a few of each other: {counts:?}");
    }

    #[test]
    fn two_choices_fall_back_to_a_scan_when_few_routes_take() {
        let routes: Vec<usize> = (0..12).collect();
        let only_five = |r: usize| RouteFacts { declined: r != 5, ..taking(r) };
        let mut least = Least::with_seed(3);
        for _ in 0..20 {
            assert_eq!(pick(&mut least, &routes, &only_five), Some(5));
        }
    }
}
