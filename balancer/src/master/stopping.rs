//! A graceful stop under way, and when the master is done with it.

use std::time::{Duration, Instant};

use super::{answer_at_stop, supervise, Master};

/// A graceful stop under way.
#[derive(Debug)]
pub(super) struct Stopping {
    /// When the workers were told to drain (after any drain delay).
    pub(super) began: Instant,
    /// Workers still running then are killed.
    pub(super) deadline: Instant,
    pub(super) stragglers_killed: bool,
    /// Once every worker is gone: how long a control client may still read its last reply.
    pub(super) exit_grace: Option<Instant>,
    /// The listeners are to stop listening once every worker has begun its
    /// drain (`Master::stop_listening_when_drained`).
    pub(super) stop_listening: bool,
    /// They have: what is left of them (`reuseport`: listeners kept for a
    /// worker that stands still) is looked at every tick.
    pub(super) stopped_listening: bool,
    /// `reuseport`: workers whose listener the master keeps for one look
    /// after their drain began, closed to newcomers, to answer what queued
    /// after the worker took its queue (`stop_listening.rs`).
    pub(super) taken_by_worker: Vec<usize>,
    /// The queues answered while the handshakes on their port end, before
    /// their listeners are shut (`answer_at_stop.rs`); one look at a time.
    pub(super) answering: Option<answer_at_stop::Answering>,
    /// Asked for (a signal, `stop`), not only the drain of a master that
    /// handed over: a `SIGINT` now is a second one, which kills the workers.
    pub(super) asked: bool,
}

impl Master {
    /// Stopping, every worker is gone, every lane has given back what it
    /// held (a dead worker's lane once its receive's cancel completes: what
    /// it never acknowledged is refused then, not dropped with the master's
    /// exit) and a new master that failed is gone too: done, its listeners
    /// no longer listening, once control clients have read their last
    /// replies and refused connections have lingered (at most a second more).
    pub(super) fn done(&mut self) -> bool {
        if self.stopping.is_none() {
            return false;
        }
        let holding = |s: &supervise::Slot| s.process.is_some() || s.lane.held_fds() > 0;
        if self.slots.iter().any(holding) || self.upgrades.waits_for_child() {
            return false;
        }
        // Not left to the tick: with the workers gone before it, the exit
        // reset every client that connected since the stop and waited in a
        // queue (seen: each of 8 clients looping across a stop, in 11 stops
        // of 12 over the four modes; all 20 queued at the fd limit).
        self.stop_listening_when_drained();
        // Its listeners are shut once the handshakes under way there end,
        // and a set-aside one once the packets in flight are past.
        if self.answering() || !self.letting_go.is_empty() {
            return false;
        }
        let replying = self.control.as_ref().is_some_and(|c| c.clients.has_pending_output());
        // The queue's `503`s just sent linger (200 ms, closed on the tick):
        // exiting at once closed them, and a request still on its way got
        // a reset (seen: a client writing after its 503 got EPIPE, 2 of 5).
        let lingering = self.dispatch.refusals_linger();
        let Some(stopping) = self.stopping.as_mut() else { return false };
        let grace = *stopping.exit_grace.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
        !(replying || lingering) || Instant::now() >= grace
    }
}
