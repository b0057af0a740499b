//! How long the next busy wait lets events gather, on either backend: the
//! base [`BATCH_WAIT`], or [`BATCH_WAIT_BUSY`] after a turn that accepted
//! many connections, as a NIC's adaptive interrupt coalescing does. Each
//! wait costs the master a sleep, a wake-up and a `sendmsg` with a wake-up
//! per worker, whatever the batch; at high connection rates a longer wait
//! spreads that over more connections (measured under `Connection: close`
//! churn on 2 vCPUs, README: about a fifth less master CPU per connection,
//! requests/s unchanged at 32 connections). A few clients at a time never
//! fill a turn that much, so they keep the short wait and its latency.

use std::time::Duration;

use super::BATCH_WAIT;

/// The wait after busy turns.
pub const BATCH_WAIT_BUSY: Duration = Duration::from_micros(300);
/// A turn that accepted this many connections makes the next waits long.
const BUSY_AT: usize = 6;
/// A turn that accepted fewer makes them short again (between the two, the
/// wait stays as it is: a longer wait gathers more, and the rate decides).
const QUIET_BELOW: usize = 3;

/// The batch wait in force.
#[derive(Debug, Default)]
pub struct BatchWait {
    busy: bool,
}

impl BatchWait {
    /// How long the next wait lets events gather.
    pub fn now(&self) -> Duration {
        if self.busy {
            BATCH_WAIT_BUSY
        } else {
            BATCH_WAIT
        }
    }

    /// A turn's wait returned with `accepted` new connections.
    pub fn after_turn(&mut self, accepted: usize) {
        if accepted >= BUSY_AT {
            self.busy = true;
        } else if accepted < QUIET_BELOW {
            self.busy = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_after_a_full_turn_and_shrinks_after_a_quiet_one() {
        let mut wait = BatchWait::default();
        assert_eq!(wait.now(), BATCH_WAIT);
        wait.after_turn(BUSY_AT - 1);
        assert_eq!(wait.now(), BATCH_WAIT, "a turn short of busy leaves the wait short");
        wait.after_turn(BUSY_AT);
        assert_eq!(wait.now(), BATCH_WAIT_BUSY);
        wait.after_turn(QUIET_BELOW);
        assert_eq!(wait.now(), BATCH_WAIT_BUSY, "between the two the wait stays long");
        wait.after_turn(QUIET_BELOW - 1);
        assert_eq!(wait.now(), BATCH_WAIT);
    }

    #[test]
    fn a_few_clients_at_a_time_keep_the_short_wait() {
        let mut wait = BatchWait::default();
        for _ in 0..100 {
            wait.after_turn(4);
        }
        assert_eq!(wait.now(), BATCH_WAIT);
    }
}
