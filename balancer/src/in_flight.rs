//! The master's waits for the packets in flight
//! ([`wait_for_packets_in_flight`]: an RCU grace period, 5 to 20 ms here,
//! some tens under load), made off its loop: each in a thread of its own
//! (they are rare: two a stop, one a scaled-away `reuseport` listener).
//! The loop turns meanwhile (acks, lanes, the control socket, metrics,
//! children, signals), and its timer looks every [`LOOK_EVERY`] whether a
//! wait is over ([`PacketsInFlight::passed`]): no descriptor is spent on
//! hearing of it, so a master at its open-file limit keeps every number
//! for its accepts and refusals (a socket pair, tried first on 2026-12-08,
//! took two, and `reliability_fd_limits`'s master at `RLIMIT_NOFILE` 32
//! refused half as fast). Without a thread the wait is made on the loop,
//! as before 2026-12-08.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::SigSet;
use ringmaster_engine::wait_for_packets_in_flight;

/// How often the master's timer looks whether a wait under way is over: a
/// few looks for a wait of 5 to 20 ms.
pub const LOOK_EVERY: Duration = Duration::from_millis(2);

/// A wait asked for: over already, or under way with this number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Made on the loop (no thread could be had): over.
    Passed,
    /// Under way in a thread: over once [`PacketsInFlight::passed`] says so.
    Pending(u64),
}

/// The waits asked for and those over.
#[derive(Debug)]
pub struct PacketsInFlight {
    /// The number of the last wait whose thread is done. A wait that began
    /// later than another's filter covers that one too: numbers are handed
    /// out in order, on the loop, so the greatest over is all that counts.
    passed: Arc<AtomicU64>,
    asked: u64,
    /// How much longer each wait lasts (`in-flight-wait`, a test's fault).
    stretch: Option<Duration>,
}

impl PacketsInFlight {
    /// None asked yet; each stretched as `RINGMASTER_FAULT` says.
    pub fn new() -> PacketsInFlight {
        let stretch = std::env::var(crate::faults::ENV_FAULT).ok().as_deref().and_then(crate::faults::in_flight_wait);
        PacketsInFlight { passed: Arc::new(AtomicU64::new(0)), asked: 0, stretch }
    }

    /// Begins a wait for the packets the kernel is processing now: in a
    /// thread, or on the loop (then it is over when this returns).
    pub fn ask(&mut self) -> Asked {
        if let Some(stretch) = self.stretch {
            crate::log!("in-flight-wait: a wait for the packets in flight begins, {} ms longer", stretch.as_millis());
        }
        let ticket = self.asked + 1;
        let (passed, stretch) = (Arc::clone(&self.passed), self.stretch);
        let thread = std::thread::Builder::new().name("in-flight".into()).stack_size(64 * 1024).spawn(move || {
            // Every signal is the loop's (its signalfd): none may end here.
            let _ = SigSet::all().thread_block();
            wait(stretch);
            passed.fetch_max(ticket, Ordering::Release);
        });
        match thread {
            Ok(_) => {
                self.asked = ticket;
                Asked::Pending(ticket)
            }
            Err(e) => {
                crate::log!(warn: "no thread for the wait for the packets in flight ({e}): made on the loop");
                wait(self.stretch);
                Asked::Passed
            }
        }
    }

    /// Whether wait `ticket` is over.
    pub fn passed(&self, ticket: u64) -> bool {
        self.passed.load(Ordering::Acquire) >= ticket
    }

    /// Whether a wait is under way.
    pub fn under_way(&self) -> bool {
        !self.passed(self.asked)
    }
}

impl Default for PacketsInFlight {
    fn default() -> Self {
        PacketsInFlight::new()
    }
}

/// One wait, stretched by `stretch`. One that cannot be had (`nohz_full`,
/// seccomp) is gone without, as the engine's callers always did.
fn wait(stretch: Option<Duration>) {
    let _ = wait_for_packets_in_flight();
    if let Some(stretch) = stretch {
        std::thread::sleep(stretch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_wait_ends_in_its_thread_and_a_later_one_covers_an_earlier_one() {
        let mut in_flight = PacketsInFlight::new();
        assert!(!in_flight.under_way());
        let Asked::Pending(first) = in_flight.ask() else { panic!("no thread") };
        let Asked::Pending(second) = in_flight.ask() else { panic!("no thread") };
        assert!(second > first);
        // The master's timer looks every few ms; here a loop does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !in_flight.passed(second) {
            assert!(Instant::now() < deadline, "the second wait is not over within 10 s");
            std::thread::sleep(LOOK_EVERY);
        }
        assert!(in_flight.passed(first), "a later wait covers an earlier one");
        assert!(!in_flight.under_way());
    }
}
