//! The master's end of its waits for the packets in flight
//! ([`PacketsInFlight`](crate::in_flight::PacketsInFlight)): the socket
//! their threads write to once one is over is watched by the reactor, and
//! what each wait held goes on then. Until 2026-12-08 each was made on the
//! loop, which stood still meanwhile (5 to 20 ms here, some tens under
//! load, twice a stop, once a scaled-away `reuseport` listener's let-go):
//! no acks read, no control or metrics answers, no
//! children reaped, no signals (`supervisor_stop_in_flight.rs`).

use std::io;

use super::ops::Op;
use super::Master;

impl Master {
    /// Watches the socket that says a wait is over, if there is one.
    pub(super) fn arm_in_flight(&mut self) -> io::Result<()> {
        match self.in_flight.woken_fd() {
            Some(fd) => self.reactor.poll_readable(fd, Op::InFlight.token(0, 0)),
            None => Ok(()),
        }
    }

    /// A wait is over (or several): what each held goes on; the socket is
    /// watched again if that poll ended (`more` false).
    pub(super) fn on_in_flight_passed(&mut self, more: bool) -> io::Result<()> {
        self.in_flight.read_wakes()?;
        if !more {
            self.arm_in_flight()?;
        }
        self.answering_after_packets_in_flight();
        self.set_aside_after_packets_in_flight();
        Ok(())
    }
}
