//! The restart delay of a crashed worker: 100 ms after its first crash,
//! growing by half with each crash up to 15 s, and back to 100 ms for a crash
//! after 30 s of uptime, so a worker that crashes in a loop never makes the
//! master spin and one that crashes rarely comes back quickly.

use std::time::Duration;

/// The delay after a first crash (and after any crash of a healthy worker).
pub const FIRST: Duration = Duration::from_millis(100);
/// Each crash multiplies the next delay by this.
pub const GROWTH: f64 = 1.5;
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(15);
/// A worker up this long is healthy again: its next crash restarts it after [`FIRST`].
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(30);

/// One worker's restart schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The schedule of a worker that has not crashed yet.
    pub fn new() -> Backoff {
        Backoff { next: FIRST }
    }

    /// A process of the worker exited (crashed) after running for `uptime`:
    /// how long to wait before restarting it. Moves the schedule on.
    pub fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= HEALTHY_UPTIME {
            self.next = FIRST;
        }
        let delay = self.next;
        self.next = self.next.mul_f64(GROWTH).min(MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(backoff: &mut Backoff, uptime: Duration, crashes: usize) -> Vec<u128> {
        (0..crashes).map(|_| backoff.after_exit(uptime).as_millis()).collect()
    }

    #[test]
    fn grows_by_half_from_100_ms_up_to_15_s() {
        let mut b = Backoff::new();
        let delays = millis(&mut b, Duration::ZERO, 16);
        assert_eq!(
            delays,
            [100, 150, 225, 337, 506, 759, 1139, 1708, 2562, 3844, 5766, 8649, 12974, 15000, 15000, 15000]
        );
    }

    #[test]
    fn the_cap_holds_however_many_crashes() {
        let mut b = Backoff::new();
        let delays = millis(&mut b, Duration::from_secs(1), 1000);
        assert!(delays.iter().all(|&d| d <= 15_000), "{delays:?}");
        assert_eq!(delays[999], 15_000);
    }

    #[test]
    fn thirty_seconds_of_uptime_resets_it() {
        let mut b = Backoff::new();
        assert_eq!(millis(&mut b, Duration::from_secs(5), 5), [100, 150, 225, 337, 506]);
        // Just short of healthy: it keeps growing.
        assert_eq!(b.after_exit(HEALTHY_UPTIME - Duration::from_millis(1)).as_millis(), 759);
        // Healthy: back to the first delay, and growing from there again.
        assert_eq!(b.after_exit(HEALTHY_UPTIME).as_millis(), 100);
        assert_eq!(millis(&mut b, Duration::ZERO, 3), [150, 225, 337]);
        // Also from the cap.
        let mut capped = Backoff::new();
        millis(&mut capped, Duration::ZERO, 20);
        assert_eq!(capped.after_exit(Duration::from_secs(3600)).as_millis(), 100);
        assert_eq!(capped.after_exit(Duration::ZERO).as_millis(), 150);
    }

    #[test]
    fn a_new_schedule_starts_at_100_ms() {
        assert_eq!(Backoff::default(), Backoff::new());
        assert_eq!(Backoff::new().after_exit(Duration::ZERO), FIRST);
    }
}
