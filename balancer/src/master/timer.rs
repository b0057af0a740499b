//! When the master's one timer fires: at the next tick, the next look of a
//! mode that steers, the earliest planned restart of a crashed worker, a
//! stop's next round of answering the listen queues, or the next look
//! whether a wait for the packets in flight is over, whichever comes
//! first. Before, a restart waited for the tick after its
//! back-off ended: 100–200 ms after a first crash instead of 100 ms, with
//! a `reuseport` slot's queue waiting for the new process all that while.

use std::io;
use std::time::{Duration, Instant};

use super::{Master, Op, TICK};

/// The shortest wait the timer is armed for: a deadline already passed
/// fires at once without arming a zero timeout (which a timerfd takes as
/// "disarm").
const SHORTEST: Duration = Duration::from_millis(1);

/// The first of the deadlines the timer serves: the tick's, and those of
/// the other things it serves that are planned.
fn first_due(next_tick: Instant, others: &[Option<Instant>]) -> Instant {
    others.iter().flatten().fold(next_tick, |first, &due| first.min(due))
}

/// How long from `now` to arm the timer for, to fire at `due`.
fn wait_until(due: Instant, now: Instant) -> Duration {
    due.saturating_duration_since(now).max(SHORTEST)
}

impl Master {
    /// The timer fired (or was cancelled to be armed sooner): go on with
    /// what waited for the packets in flight if that wait is over, steer
    /// when a look is due, answer the queues when a stop's round is due, tick
    /// when the tick is due, else start the restarts that are due, and arm
    /// the timer for the next deadline.
    pub(super) fn on_tick(&mut self) -> io::Result<()> {
        let now = Instant::now();
        self.after_packets_in_flight();
        if self.next_answer_round().is_some_and(|due| now >= due) {
            self.answer_round();
        }
        if let Some(every) = self.dispatch.balance.steer_every() {
            if now >= self.next_steer {
                self.next_steer = now + every;
                self.steer();
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.tick()?;
        } else if self.stopping.is_none() {
            self.restart_due();
        }
        self.arm_timer()
    }

    /// Arms the timer for the first deadline to come.
    pub(super) fn arm_timer(&mut self) -> io::Result<()> {
        self.timer_outdated = false;
        let next_steer = self.dispatch.balance.steer_every().map(|_| self.next_steer);
        let now = Instant::now();
        let due = first_due(
            self.next_tick,
            &[next_steer, self.next_restart(), self.next_answer_round(), self.next_in_flight_look(now)],
        );
        self.reactor.timeout(wait_until(due, now), Op::Tick.token(0, 0))
    }

    /// A restart was planned since the timer was armed
    /// ([`Master::plan_restart`]): the timer in flight may be due after it,
    /// so it is cancelled, and its completion ([`Master::on_tick`]) arms it
    /// again for the first deadline. Restarts are rare; a cancel each costs
    /// nothing worth sparing.
    pub(super) fn rearm_timer_if_outdated(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.timer_outdated) {
            return Ok(());
        }
        self.reactor.cancel(Op::Tick.token(0, 0))
    }

    /// The earliest planned restart, while the master is not stopping (a
    /// stopping master starts none: a due one must not keep the timer firing).
    fn next_restart(&self) -> Option<Instant> {
        if self.stopping.is_some() {
            return None;
        }
        self.workers.iter().filter_map(|w| w.restart_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_due_before_the_tick_sets_the_timer() {
        let now = Instant::now();
        let tick = now + TICK;
        let restart = now + Duration::from_millis(30);
        assert_eq!(first_due(tick, &[None, Some(restart)]), restart);
        assert_eq!(wait_until(first_due(tick, &[None, Some(restart)]), now), Duration::from_millis(30));
        // One due after the tick waits for it (the tick starts it, or sets the timer again).
        assert_eq!(first_due(tick, &[None, Some(tick + TICK)]), tick);
        assert_eq!(first_due(tick, &[None, None]), tick);
    }

    #[test]
    fn the_steering_look_the_tick_a_restart_and_an_answering_round_take_the_first() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        assert_eq!(first_due(ms(100), &[Some(ms(10)), Some(ms(40))]), ms(10));
        assert_eq!(first_due(ms(100), &[Some(ms(50)), Some(ms(40))]), ms(40));
        assert_eq!(first_due(ms(20), &[Some(ms(50)), Some(ms(40))]), ms(20));
        assert_eq!(first_due(ms(100), &[None, None, Some(ms(5))]), ms(5));
    }

    #[test]
    fn a_deadline_passed_fires_soon_but_never_arms_a_zero_wait() {
        let now = Instant::now();
        assert_eq!(wait_until(now, now), SHORTEST);
        assert_eq!(wait_until(now, now + Duration::from_secs(1)), SHORTEST);
        assert_eq!(wait_until(now + Duration::from_secs(2), now), Duration::from_secs(2));
    }
}
