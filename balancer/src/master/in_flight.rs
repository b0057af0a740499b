//! The master's end of its waits for the packets in flight
//! ([`PacketsInFlight`](crate::in_flight::PacketsInFlight)): while one is
//! under way its timer looks every [`LOOK_EVERY`] whether it is over, and
//! what each wait held goes on then. Until 2026-12-08 each was made on the
//! loop, which stood still meanwhile (5 to 20 ms here, some tens under
//! load, twice a stop, once a scaled-away `reuseport` listener's let-go):
//! no acks read, no control or metrics answers, no children reaped, no
//! signals (`supervisor_stop_in_flight.rs`).

use std::time::Instant;

use super::Master;
use crate::in_flight::{Asked, LOOK_EVERY};

impl Master {
    /// Begins a wait for the packets in flight; one under way has the
    /// timer look for its end soon, not at the next tick.
    pub(super) fn ask_packets_in_flight(&mut self) -> Asked {
        let asked = self.in_flight.ask();
        if matches!(asked, Asked::Pending(_)) {
            self.timer_outdated = true;
        }
        asked
    }

    /// When the timer should next look whether a wait is over: while one
    /// is under way.
    pub(super) fn next_in_flight_look(&self, now: Instant) -> Option<Instant> {
        self.in_flight.under_way().then(|| now + LOOK_EVERY)
    }

    /// The timer fired: what waited for a wait now over goes on.
    pub(super) fn after_packets_in_flight(&mut self) {
        self.answering_after_packets_in_flight();
        self.set_aside_after_packets_in_flight();
    }
}
