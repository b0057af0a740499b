//! A scaled-away worker's `reuseport` listener, set aside by the mode
//! (`modes/reuseport/set_aside.rs`): the master keeps it while the worker's
//! processes take their queue as their drain begins, and lets go of it (it
//! stops the handshakes there, takes what waits, hands it on, and shuts
//! it) once none of them will accept there again: each has begun its drain
//! or is gone, or each stands still (stopped, wedged) for
//! [`STUCK_AT_STOP`], or one is about to be killed. Its close is then the
//! master's, the last, whatever became of the worker: killed or stopped
//! before it let go, or draining for a reload when the scale-down came (a
//! plain drain, whose close the master's copy outlived).

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ringmaster_engine::stats::{STATE_READY, STATE_STARTING};

use super::stop_listening::STUCK_AT_STOP;
use super::Master;
use crate::in_flight::Asked;

/// A set-aside listener whose let-go waits for the packets in flight.
#[derive(Debug)]
pub(super) struct LettingGo {
    worker: usize,
    /// The wait's number.
    wait: u64,
    why: Option<&'static str>,
}

/// Where a process of a worker whose listener is set aside stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holding {
    /// Its drain has begun (it took its queue and let go), or it is gone.
    LetGo,
    /// Ready, and its loop has stood still for [`STUCK_AT_STOP`] since the
    /// listener was set aside at the earliest: it takes nothing there.
    StandsStill,
    /// It may still accept there: it serves, or it is starting.
    Holds,
}

/// Whether to let go of a set-aside listener whose worker's processes
/// stand as `holding` (none, one, or an old and a new one during a reload):
/// `Some(None)` when every one let go, `Some(Some(why))` when none will
/// accept there but one still holds it, `None` to keep it.
fn let_go_when(holding: &[Holding]) -> Option<Option<&'static str>> {
    if holding.iter().all(|&h| h == Holding::LetGo) {
        Some(None)
    } else if holding.contains(&Holding::Holds) {
        None
    } else {
        Some(Some("it stands still"))
    }
}

/// Why a set-aside listener's handshakes could not be stopped before its
/// let-go (its SYN filter could not be put on).
fn could_not_stop_handshakes(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot stop its handshakes first: {e}"))
}

impl Master {
    /// Each tick: lets go of every set-aside listener no process of its
    /// worker will accept on again.
    pub(super) fn let_go_set_aside_listeners(&mut self) {
        let now = Instant::now();
        for (worker, since) in self.dispatch.balance.set_aside_since() {
            let holding: Vec<Holding> = (0..self.slots.len())
                .filter(|&slot| self.slots[slot].process.as_ref().is_some_and(|p| p.worker == worker))
                .map(|slot| self.holding(slot, now, since))
                .collect();
            if let Some(why) = let_go_when(&holding) {
                self.let_go_set_aside(worker, why);
            }
        }
    }

    /// How the process in `slot` stands towards its worker's listener, set
    /// aside `since`.
    fn holding(&self, slot: usize, now: Instant, since: Instant) -> Holding {
        let Some(process) = self.slots[slot].process.as_ref() else { return Holding::LetGo };
        match self.stats.slot(slot).map(|c| c.state.load(Ordering::Acquire)) {
            Some(STATE_READY) if now.saturating_duration_since(process.heartbeat_moved.max(since)) >= STUCK_AT_STOP => {
                Holding::StandsStill
            }
            Some(STATE_READY | STATE_STARTING) | None => Holding::Holds,
            Some(_) => Holding::LetGo,
        }
    }

    /// Begins letting go of worker `worker`'s set-aside listener, if it
    /// has one: its handshakes are stopped, and once the packets in flight
    /// are past (off the loop: `in_flight.rs`) what waited there is handed
    /// to the workers that take connections; `why` it is let go of while a
    /// process of the worker still holds it.
    pub(super) fn let_go_set_aside(&mut self, worker: usize, why: Option<&'static str>) {
        let Some(filtered) = self.dispatch.balance.stop_set_aside_handshakes(worker) else { return };
        // No filter, no wait: as before, what completes there is taken now.
        let asked = if filtered.is_ok() { self.ask_packets_in_flight() } else { Asked::Passed };
        match asked {
            Asked::Passed => self.end_let_go(worker, why, filtered.err()),
            Asked::Pending(wait) => self.letting_go.push(LettingGo { worker, wait, why }),
        }
    }

    /// A wait for the packets in flight is over: the let-gos that waited
    /// for it (or for one asked earlier) end.
    pub(super) fn set_aside_after_packets_in_flight(&mut self) {
        let (passed, waiting) =
            std::mem::take(&mut self.letting_go).into_iter().partition(|l| self.in_flight.passed(l.wait));
        self.letting_go = waiting;
        for LettingGo { worker, why, .. } in passed {
            self.end_let_go(worker, why, None);
        }
    }

    /// The workers whose set-aside listener waits for the packets in
    /// flight before its let-go ends: their processes are not killed until
    /// then (`kill_overdue_retirees`).
    pub(super) fn workers_letting_go(&self) -> Vec<usize> {
        self.letting_go.iter().map(|l| l.worker).collect()
    }

    /// The let-go's end: what waited is taken and handed on, the listener
    /// shut; `unfiltered`: why its handshakes could not be stopped first.
    fn end_let_go(&mut self, worker: usize, why: Option<&str>, unfiltered: Option<io::Error>) {
        let mut taken = Vec::new();
        let Some(mut let_go) = self.dispatch.balance.let_go_set_aside(worker, &mut taken) else { return };
        if let Some(e) = unfiltered {
            let_go.error = let_go.error.or(Some(could_not_stop_handshakes(e)));
        }
        for connection in taken {
            self.counts.rescued += 1;
            self.route(connection);
        }
        let waited = match let_go.taken {
            0 => String::new(),
            n => format!(": the {n} connections that waited there are handed on"),
        };
        if let Some(e) = &let_go.error {
            crate::log!(warn { worker: worker }: "scale: worker {worker}'s listener is let go of: {e}{waited}");
        } else if let Some(why) = why {
            crate::log!(info { worker: worker }: "scale: worker {worker}'s listener is shut as {why}{waited}");
        } else if let_go.taken > 0 {
            crate::log!(info { worker: worker }: "scale: worker {worker}'s listener is closed{waited}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_aside_listener_is_let_go_of_once_no_process_will_accept_there() {
        use Holding::*;
        assert_eq!(let_go_when(&[]), Some(None), "no process runs it");
        assert_eq!(let_go_when(&[LetGo, LetGo]), Some(None), "a reload's old and new process both drain");
        assert_eq!(let_go_when(&[LetGo, StandsStill]), Some(Some("it stands still")));
        assert_eq!(let_go_when(&[StandsStill]), Some(Some("it stands still")));
        assert_eq!(let_go_when(&[LetGo, Holds]), None, "a reload's new process has not drained yet");
        assert_eq!(let_go_when(&[StandsStill, Holds]), None);
    }
}
