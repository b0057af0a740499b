//! `least`: the master accepts every connection and gives it to the least
//! loaded worker among those that can take one now (not draining, full,
//! declining or stalled). A worker's load is its outstanding connections —
//! live (its stats slot), handed over and not yet acknowledged, and queued
//! in the master for it — plus the delay it shows, one connection for every
//! [`DELAY_PER_CONNECTION_US`]: how long it has lately taken to acknowledge
//! a batch, from the master's send to its own ack (a peak EWMA, as
//! Finagle's and Linkerd's balancers keep, [`AckDelay`]), or how long its
//! oldest batch has waited for the ack now, if longer. Ties go in turn.
//!
//! Counts alone follow their own moment-to-moment noise and send runs of
//! connections to one worker, and do not see that a worker with as many
//! connections is busier (deep pipelines, a slow handler): its loop turns
//! run long, and a connection handed to it waits for the turn to end. The
//! delay shows that, and new connections go elsewhere while it lasts
//! (`results/experiments-20261206/`, and the README's "How `least` picks").
//! The delay fades below a microsecond within a few hundred milliseconds
//! once a worker is handed nothing (τ 20 ms), so workers that are handed
//! nothing for a while are judged by their counts alone: the emptier takes
//! new connections until even, and equal ones are dealt to in turn, as `rr`
//! deals. Added, not multiplied: tens of microseconds of noise move a split
//! by a connection or two, whether workers hold ten or ten thousand; only
//! milliseconds move it far.
//!
//! Above [`TWO_CHOICES_ABOVE`] workers the pick is power-of-two-choices over
//! the same numbers (HAProxy's `random(2)`, Envoy's `LEAST_REQUEST` with
//! `choice_count` 2): two workers drawn at random, the less loaded one wins.
//! That reads two stats slots per connection instead of every one (each a
//! cache line its worker writes every loop turn) and still lands within a
//! connection or two of the least loaded worker. Workers get no listener.
//!
//! A route is passed over at a pick when it cannot take and would have
//! been preferred to the one picked: less loaded, or as loaded and
//! earlier in turn (with two choices: drawn, and no more loaded than
//! the winner); every route that cannot take, when none can.
//!
//! [`AckDelay`]: crate::handoff::ack_delay::AckDelay

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Balance, RouteFacts};
use crate::config::Mode;

/// Above this many routes, two random choices replace the full scan.
pub const TWO_CHOICES_ABOVE: usize = 8;
/// Pairs of draws two choices make before they settle for fewer than two
/// routes that take (and scan, if none).
const DRAWS: usize = 4;

/// How much delay counts as one more connection, in microseconds. Chosen
/// by measurement (2026-12-06, the unequal run): 100 µs kept the split of
/// connections even (Jain 0.96) but the churn half's p99 at 0.78× `rr`'s;
/// 25 µs, 0.55× (0.85× and 0.65× in two more runs), splitting them by how
/// busy each worker is (Jain 0.69–0.85).
pub const DELAY_PER_CONNECTION_US: u64 = 25;

/// What a route is ranked by, lowest first: its outstanding connections,
/// plus one more for every [`DELAY_PER_CONNECTION_US`] of the wait it
/// shows (its recent ack delay, or its oldest batch's wait now if longer),
/// in microseconds. A delay decayed below one microsecond counts as none,
/// so idle workers tie by their counts.
fn load(route: &RouteFacts) -> u128 {
    let delay_us = route.ack_delay.max(route.ack_wait).as_micros();
    u128::from(route.outstanding()) * u128::from(DELAY_PER_CONNECTION_US) + delay_us
}

/// A route that cannot take, ranked as it would have been had it kept up:
/// without the wait of its batch now (that wait is why it lags; counted,
/// it would rank a stalled worker behind every other, never passed over).
fn load_had_it_kept_up(route: &RouteFacts) -> u128 {
    load(&RouteFacts { ack_wait: Duration::ZERO, ..*route })
}

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

    /// The index of the least loaded route ([`load`]) among those that
    /// take, the first in turn order from the cursor on a tie. Passed over:
    /// each route that does not take and ranks ahead of it (less loaded had
    /// it kept up, or as loaded and earlier in turn); every route that does
    /// not take, when none does.
    fn scan(
        &self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        // (index, load, steps from the cursor)
        let mut best: Option<(usize, u128, usize)> = None;
        let mut all_take = true;
        for step in 0..routes.len() {
            let index = (self.next + step) % routes.len();
            let route = facts(routes[index]);
            if !route.takes() {
                all_take = false;
            } else if best.is_none_or(|(_, lowest, _)| load(&route) < lowest) {
                best = Some((index, load(&route), step));
            }
        }
        if !all_take {
            // Only while some worker lags, is full or drains: the second look
            // keeps the common pass to one read of each worker's facts.
            for step in 0..routes.len() {
                let index = (self.next + step) % routes.len();
                let route = facts(routes[index]);
                if !route.takes()
                    && best.is_none_or(|(_, lowest, at)| (load_had_it_kept_up(&route), step) < (lowest, at))
                {
                    passed_over(routes[index]);
                }
            }
        }
        best.map(|(index, _, _)| index)
    }

    /// Two distinct routes that take, drawn at random: the less loaded one
    /// wins. `None` when the draws found none that takes (the scan that
    /// follows then tells who was passed over). Passed over: each route drawn
    /// that does not take and, had it kept up, is no more loaded than the
    /// winner (the draws have no turn order to rank a tie by).
    fn two_choices(
        &mut self,
        routes: &[usize],
        facts: &dyn Fn(usize) -> RouteFacts,
        passed_over: &mut dyn FnMut(usize),
    ) -> Option<usize> {
        let mut best: Option<(usize, u128)> = None;
        // Routes drawn that do not take, each once: (index, load).
        let mut not_taking = [(0usize, 0u128); 2 * DRAWS];
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
                    not_taking[not_taking_len] = (index, load_had_it_kept_up(&route));
                    not_taking_len += 1;
                }
                continue;
            }
            if best.is_none_or(|(_, lowest)| load(&route) < lowest) {
                best = Some((index, load(&route)));
            }
            compared += 1;
            if compared == 2 {
                break;
            }
        }
        let (chosen, lowest) = best?;
        for &(index, drawn) in &not_taking[..not_taking_len] {
            if drawn <= lowest {
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

    fn weighs_delay(&self) -> bool {
        true
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
    fn a_worker_that_acknowledges_late_loses_to_a_busier_one_that_keeps_up() {
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        let mut least = Least::with_seed(1);
        // Worker 0 has fewer connections but has lately taken 2 ms to
        // acknowledge a batch; worker 1 has more and answers in 100 µs.
        let late = |r: usize| RouteFacts { live: [2, 5][r], ack_delay: [ms(2), us(100)][r], ..taking(r) };
        assert_eq!(pick(&mut least, &[0, 1], &late), Some(1));
        assert!(least.weighs_delay(), "the master must work the delay out for its picks");
        // A batch waiting at worker 1 now, longer than worker 0's delay, counts as its delay.
        let waiting = |r: usize| RouteFacts { ack_wait: [Duration::ZERO, ms(3)][r], ..late(r) };
        assert_eq!(pick(&mut least, &[0, 1], &waiting), Some(0));
        // Equal delays: the fewest outstanding wins, as by counts alone.
        let equal = |r: usize| RouteFacts { ack_delay: us(100), ..late(r) };
        assert_eq!(pick(&mut least, &[0, 1], &equal), Some(0));
    }

    #[test]
    fn a_delay_counts_as_a_connection_for_every_25_microseconds() {
        let us = Duration::from_micros;
        let mut least = Least::with_seed(1);
        // 100 µs is 4 connections: worker 0, 3 fewer, loses; 5 fewer, wins.
        let three_fewer = |r: usize| RouteFacts {
            live: [1_000, 1_003][r],
            ack_delay: [us(100), us(0)][r],
            max_conns: 100_000,
            ..taking(r)
        };
        assert_eq!(pick(&mut least, &[0, 1], &three_fewer), Some(1));
        let five_fewer = |r: usize| RouteFacts { live: [1_000, 1_005][r], ..three_fewer(r) };
        assert_eq!(pick(&mut least, &[0, 1], &five_fewer), Some(0));
        // A delay faded under a microsecond counts as none: a tie, in turn.
        let faded = |r: usize| RouteFacts { live: 7, ack_delay: [Duration::from_nanos(900), us(0)][r], ..taking(r) };
        let mut least = Least::with_seed(1);
        assert_eq!(pick(&mut least, &[0, 1], &faded), Some(0));
        assert_eq!(pick(&mut least, &[0, 1], &faded), Some(1));
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
