//! A stop's answers (`503`) to what waits in a listener's queue just before
//! it stops listening: the queue closed to newcomers first, and answered
//! while the handshakes begun there complete into it (`handshakes`), so
//! that a full queue makes room for them. The wait is a state of the stop
//! ([`Answering`]) that the master's timer drives, a round every
//! [`POLL`](handshakes::POLL): the loop turns meanwhile (acks, lanes, the
//! control socket, metrics, children, signals), and the listeners are shut
//! once no handshake is under way there
//! ([`Master::end_of_answering`]). The waits for the packets in flight
//! before the first round and before the shut are states of it too
//! ([`Phase`]): made off the loop (`in_flight.rs`), they end in
//! [`Master::answering_after_packets_in_flight`].

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use ringmaster_engine::out_of_fds;

use super::Master;
use crate::handshakes;
use crate::in_flight::Asked;
use crate::reactor::sys;
use crate::rlimit::fd_limit_text;

/// What becomes of a listener once its queue has been answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// The master's listener (`rr`, `least`, `shared`): it stops listening.
    Listener,
    /// `reuseport`: worker's listener, whose worker took its queue at an
    /// earlier look: shut, and let go of.
    Taken(usize),
    /// `reuseport`: worker's listener, which no process will take from
    /// (why): shut after the taken ones, and let go of.
    Shut(usize, &'static str),
}

/// Where an answering stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The packets in flight as the queues closed to newcomers are waited
    /// for (that wait's number): then the rounds begin.
    Beginning(u64),
    /// A round every [`POLL`](handshakes::POLL).
    Rounds,
    /// The packets in flight as the rounds ended are waited for: then the
    /// queues are answered once more and the listeners shut.
    Ending(u64),
}

/// The listeners a stop answers while the handshakes on their port end
/// (all on one port), and what it says once they are shut.
#[derive(Debug)]
pub(super) struct Answering {
    /// Each listener, and how many were answered there so far, or the
    /// error that kept it from being made non-blocking (not tried again).
    pub(super) listeners: Vec<(Ending, io::Result<usize>)>,
    /// Past it the listeners are shut, handshakes under way or not.
    deadline: Instant,
    /// When the next round is due.
    next_round: Instant,
    /// `reuseport`: what the look that began it says (its workers that run
    /// again, that stand still), and whether it was the stop's first.
    pub(super) said: Vec<String>,
    pub(super) still: Vec<usize>,
    pub(super) first: bool,
    pub(super) phase: Phase,
}

/// How long a stop waits for the handshakes under way:
/// [`HANDSHAKES_WAIT`](handshakes::HANDSHAKES_WAIT), or what a test asks
/// ([`faults::handshakes_wait`](crate::faults::handshakes_wait)).
fn handshakes_wait() -> std::time::Duration {
    let asked = std::env::var(crate::faults::ENV_FAULT).ok();
    asked.as_deref().and_then(crate::faults::handshakes_wait).unwrap_or(handshakes::HANDSHAKES_WAIT)
}

impl Answering {
    /// For `listeners`; what their look says, as [`Answering::said`].
    pub(super) fn new(listeners: Vec<Ending>, said: Vec<String>, still: Vec<usize>, first: bool) -> Answering {
        let now = Instant::now();
        Answering {
            listeners: listeners.into_iter().map(|ending| (ending, Ok(0))).collect(),
            deadline: now + handshakes_wait(),
            next_round: now,
            said,
            still,
            first,
            phase: Phase::Rounds,
        }
    }

    /// The same, at `phase`.
    pub(super) fn at(self, phase: Phase) -> Answering {
        Answering { phase, ..self }
    }

    /// How many were answered on `ending`'s listener so far (0 after an error).
    pub(super) fn answered(&self, ending: Ending) -> usize {
        self.listeners.iter().find(|(e, _)| *e == ending).map_or(0, |(_, answered)| *answered.as_ref().unwrap_or(&0))
    }
}

impl Master {
    /// Begins answering what waits in `answering`'s queues until no
    /// handshake is under way on their port (at most
    /// [`HANDSHAKES_WAIT`](handshakes::HANDSHAKES_WAIT)), then shuts them.
    /// While it waits, not only after: with the queue full the kernel drops
    /// a handshake's last ACK (its request socket stays, its client's
    /// connect has returned), and only room lets the client's next packet,
    /// its request or its ACK again, complete it into the queue. Until
    /// 2026-12-07 the stop answered after the wait, which a full queue made
    /// last the whole 500 ms, and the listener was shut with that handshake
    /// under way: its client was reset as its request came (5 stops of 5 in
    /// every mode, on both backends). Until 2026-12-07 the wait was also a
    /// sleep loop in the master, whose loop stood still meanwhile, up to
    /// 500 ms a look: no acks read, no control or metrics answers, no
    /// signals (`supervisor_stop_answering.rs`: 4 modes of 4 failed, on
    /// both backends).
    pub(super) fn begin_answering(&mut self, answering: Answering) {
        if answering.listeners.is_empty() {
            return self.end_of_answering(answering);
        }
        // A SYN the filter let by just before it went on: once this wait is
        // over its request socket exists, and the count sees it.
        match self.ask_packets_in_flight() {
            Asked::Passed => {
                self.keep_answering(answering);
                self.answer_round();
            }
            Asked::Pending(wait) => self.keep_answering(answering.at(Phase::Beginning(wait))),
        }
    }

    /// A wait for the packets in flight is over: the answering it held
    /// goes on, if it was that one's (or one asked later: it covers it).
    pub(super) fn answering_after_packets_in_flight(&mut self) {
        let Some(phase) = self.answering_mut().map(|a| a.phase) else { return };
        match phase {
            Phase::Beginning(wait) if self.in_flight.passed(wait) => {
                if let Some(answering) = self.answering_mut() {
                    answering.phase = Phase::Rounds;
                }
                self.answer_round();
            }
            Phase::Ending(wait) if self.in_flight.passed(wait) => {
                if let Some(answering) = self.stopping.as_mut().and_then(|s| s.answering.take()) {
                    self.shut_answered(answering);
                }
            }
            _ => {}
        }
    }

    /// The answering under way, if one is.
    fn answering_mut(&mut self) -> Option<&mut Answering> {
        self.stopping.as_mut()?.answering.as_mut()
    }

    /// Keeps `answering` as the stop's, until its next step.
    pub(super) fn keep_answering(&mut self, answering: Answering) {
        if let Some(stopping) = self.stopping.as_mut() {
            stopping.answering = Some(answering);
        }
    }

    /// When the next round of the answering under way is due, if one is
    /// (none while it waits for the packets in flight).
    pub(super) fn next_answer_round(&self) -> Option<Instant> {
        let answering = self.stopping.as_ref()?.answering.as_ref()?;
        (answering.phase == Phase::Rounds).then_some(answering.next_round)
    }

    /// The stop answers queues now, or waits between two of its steps (the
    /// listeners are shut once it ends).
    pub(super) fn answering(&self) -> bool {
        self.stopping.as_ref().is_some_and(|s| s.answering.is_some())
    }

    /// One round: answers each listener's queue, and counts the handshakes
    /// under way on their port; with none (or the count not to be had:
    /// no `NETLINK_SOCK_DIAG`) or past the deadline, the answering ends,
    /// else the next round is planned ([`POLL`](handshakes::POLL) on).
    pub(super) fn answer_round(&mut self) {
        if self.next_answer_round().is_none() {
            return;
        }
        let Some(mut answering) = self.stopping.as_mut().and_then(|s| s.answering.take()) else { return };
        let now = Instant::now();
        self.answer_queues(&mut answering.listeners, now);
        let counted = self.listener_of(&answering).map(handshakes::handshakes_under_way);
        if !counted.is_some_and(|n| n.is_ok_and(|n| n > 0)) || now >= answering.deadline {
            return self.end_of_answering(answering);
        }
        answering.next_round = now + handshakes::POLL;
        self.keep_answering(answering);
        // The timer may be armed for later (the tick): armed again sooner.
        self.timer_outdated = true;
    }

    /// One round of [`Master::answer_queue`] over `listeners`, adding to
    /// each one's count. A listener another path let go of meanwhile (a
    /// set-aside one, by its own let-go) is passed by.
    pub(super) fn answer_queues(&mut self, listeners: &mut [(Ending, io::Result<usize>)], now: Instant) {
        for (ending, count) in listeners.iter_mut() {
            let Ok(so_far) = count else { continue };
            let Some(listener) = self.answered_listener(*ending) else { continue };
            *count = self.answer_queue(listener, now).map(|more| *so_far + more);
        }
    }

    /// The listener an answering counts the handshakes on: the first of
    /// its listeners still held (all are on one port).
    fn listener_of(&self, answering: &Answering) -> Option<RawFd> {
        answering.listeners.iter().find_map(|&(ending, _)| self.answered_listener(ending))
    }

    /// `ending`'s listener, while it is still held.
    pub(super) fn answered_listener(&self, ending: Ending) -> Option<RawFd> {
        match ending {
            Ending::Listener => Some(self.listener.as_raw_fd()),
            Ending::Taken(worker) | Ending::Shut(worker, _) => {
                self.listeners_at_stop().into_iter().find(|&(w, _)| w == worker).map(|(_, fd)| fd)
            }
        }
    }

    /// Answers `503` to what waits in `listener`'s queue (up to `--backlog`
    /// and one: the kernel queues one past it), without waiting: how many,
    /// or the error that kept the listener from being made non-blocking.
    /// Until 2026-12-07 up to `--backlog`: the last of a full queue was
    /// left there, and reset as the listener was shut (5 stops of 5 in
    /// every mode, on both backends). The flag is the socket's, and its
    /// other holders, workers that accept on it, already expect `EAGAIN`.
    /// At the open-file limit each accept gets a number freed for it (a
    /// spare of the reserve, else an earlier refusal's, its linger cut
    /// short): the shutdown that follows would reset what is left in the
    /// queue.
    pub(super) fn answer_queue(&mut self, listener: RawFd, now: Instant) -> io::Result<usize> {
        sys::set_nonblocking(listener)?;
        let mut answered = 0;
        let mut tries = self.config.backlog.max(1).saturating_add(1);
        while tries > 0 {
            match sys::accept(listener) {
                Ok(connection) => {
                    self.dispatch.refuse(connection, now);
                    answered += 1;
                }
                Err(e) if sys::accept_goes_on(&e) => {}
                // Not a try: the accept took nothing off the queue.
                Err(e) if e.raw_os_error().is_some_and(out_of_fds) && self.free_a_number_for_a_refusal() => continue,
                Err(e) => {
                    if e.raw_os_error().is_some_and(out_of_fds) {
                        crate::log!(warn: "stopping: the master is at its open-file limit ({}) with nothing left to free: what waits in the queue is reset", fd_limit_text());
                    }
                    break;
                }
            }
            tries -= 1;
        }
        Ok(answered)
    }
}

/// Turns newcomers away from `listeners` (their SYNs dropped; the retry
/// meets a closed port and is refused), leaving what is queued and the
/// handshakes begun: a listener shut with one under way resets its client
/// as it completes, just after its connect returned (`handshakes`).
pub(super) fn close_to_newcomers(listeners: &[RawFd]) {
    for &listener in listeners {
        if let Err(e) = sys::close_queue_to_newcomers(listener) {
            crate::log!(warn: "stopping: cannot close the listen queue to newcomers ({e}): one may be reset");
        }
    }
}
