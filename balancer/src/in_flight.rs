//! The master's waits for the packets in flight
//! ([`wait_for_packets_in_flight`]: an RCU grace period, 5 to 20 ms here,
//! some tens under load), made off its loop: each in a thread of its own
//! (they are rare: two a stop, one a scaled-away `reuseport` listener),
//! which says it is over through a socket the master's reactor watches.
//! The loop turns meanwhile (acks, lanes, the control socket, metrics,
//! children, signals); the caller goes on once [`PacketsInFlight::passed`]
//! says its wait is over. Without a thread or the socket the wait is made
//! on the loop, as before 2026-12-08.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::SigSet;
use ringmaster_engine::wait_for_packets_in_flight;

/// A wait asked for: over already, or under way with this number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Made on the loop (no thread could be had): over.
    Passed,
    /// Under way in a thread: over once [`PacketsInFlight::passed`] says so.
    Pending(u64),
}

/// The waits asked for and those over, and the socket that says so.
#[derive(Debug)]
pub struct PacketsInFlight {
    /// Readable once a wait is over; the threads write to its peer.
    woken: Option<(UnixStream, Arc<UnixStream>)>,
    /// The number of the last wait whose thread is done. A wait that began
    /// later than another's filter covers that one too: numbers are handed
    /// out in order, on the loop, so the greatest over is all that counts.
    passed: Arc<AtomicU64>,
    asked: u64,
    /// How much longer each wait lasts (`in-flight-wait`, a test's fault).
    stretch: Option<Duration>,
}

impl PacketsInFlight {
    /// Its socket, or none (each wait is then made on the loop).
    pub fn new() -> PacketsInFlight {
        let stretch = std::env::var(crate::faults::ENV_FAULT).ok().as_deref().and_then(crate::faults::in_flight_wait);
        let woken = UnixStream::pair().and_then(|(woken, wake)| {
            woken.set_nonblocking(true)?;
            // A wake-up already unread says as much as a new one.
            wake.set_nonblocking(true)?;
            Ok((woken, Arc::new(wake)))
        });
        let woken = woken
            .inspect_err(|e| crate::log!(warn: "the waits for the packets in flight are made on the loop: no socket to hear them end ({e})"))
            .ok();
        PacketsInFlight { woken, passed: Arc::new(AtomicU64::new(0)), asked: 0, stretch }
    }

    /// What the reactor watches: readable once a wait is over.
    pub fn woken_fd(&self) -> Option<RawFd> {
        self.woken.as_ref().map(|(woken, _)| woken.as_raw_fd())
    }

    /// Begins a wait for the packets the kernel is processing now: in a
    /// thread, or on the loop (then it is over when this returns).
    pub fn ask(&mut self) -> Asked {
        if let Some(stretch) = self.stretch {
            crate::log!("in-flight-wait: a wait for the packets in flight begins, {} ms longer", stretch.as_millis());
        }
        let Some((_, wake)) = self.woken.as_ref() else {
            self.wait_here();
            return Asked::Passed;
        };
        self.asked += 1;
        let (ticket, wake, passed, stretch) = (self.asked, Arc::clone(wake), Arc::clone(&self.passed), self.stretch);
        let thread = std::thread::Builder::new().name("in-flight".into()).stack_size(64 * 1024).spawn(move || {
            // Every signal is the loop's (its signalfd): none may end here.
            let _ = SigSet::all().thread_block();
            wait(stretch);
            passed.fetch_max(ticket, Ordering::Release);
            let _ = (&*wake).write(&[1]);
        });
        match thread {
            Ok(_) => Asked::Pending(ticket),
            Err(e) => {
                crate::log!(warn: "no thread for the wait for the packets in flight ({e}): made on the loop");
                self.wait_here();
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

    /// Reads what the threads wrote: the socket is readable again only
    /// once the next wait is over.
    pub fn read_wakes(&self) -> io::Result<()> {
        let Some((woken, _)) = self.woken.as_ref() else { return Ok(()) };
        let mut bytes = [0u8; 64];
        loop {
            match (&*woken).read(&mut bytes) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("the in-flight waits' socket: {e}"))),
            }
        }
    }

    /// A wait on the loop.
    fn wait_here(&self) {
        wait(self.stretch);
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

    #[test]
    fn a_wait_ends_in_its_thread_and_says_so_on_the_socket() {
        let mut in_flight = PacketsInFlight::new();
        let Asked::Pending(first) = in_flight.ask() else { panic!("no thread") };
        let Asked::Pending(second) = in_flight.ask() else { panic!("no thread") };
        assert!(second > first);
        // The loop's reactor waits for it to be readable; here a read does.
        let (woken, _) = in_flight.woken.as_ref().expect("the socket");
        let mut woken = woken.try_clone().expect("a copy");
        woken.set_nonblocking(false).expect("blocking");
        woken.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
        while !in_flight.passed(second) {
            woken.read_exact(&mut [0u8]).expect("a wake-up within 5 s");
        }
        assert!(in_flight.passed(first), "a later wait covers an earlier one");
        assert!(!in_flight.under_way());
    }
}
