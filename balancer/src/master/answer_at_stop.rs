//! A stop's answers (`503`) to what waits in a listener's queue just before
//! it stops listening: the queue closed to newcomers first, and answered
//! while the handshakes begun there complete into it (`handshakes`), so
//! that a full queue makes room for them.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use ringmaster_engine::out_of_fds;

use super::Master;
use crate::handshakes;
use crate::reactor::sys;
use crate::rlimit::fd_limit_text;

impl Master {
    /// Answers what waits in `listeners`' queues (all on one port) until no
    /// handshake is under way there (at most
    /// [`HANDSHAKES_WAIT`](handshakes::HANDSHAKES_WAIT)), and once more
    /// after. While it waits, not only after: with the queue full the
    /// kernel drops a handshake's last ACK (its request socket stays, its
    /// client's connect has returned), and only room lets the client's next
    /// packet, its request or its ACK again, complete it into the queue.
    /// Until 2026-12-07 the stop answered after the wait, which a full
    /// queue made last the whole 500 ms, and the listener was shut with
    /// that handshake under way: its client was reset as its request came
    /// (5 stops of 5 in every mode, on both backends). For each listener,
    /// in order: how many were answered, or the error that kept it from
    /// being made non-blocking (not tried again).
    pub(super) fn answer_while_handshakes_end(&mut self, listeners: &[RawFd]) -> Vec<io::Result<usize>> {
        let mut answered: Vec<io::Result<usize>> = listeners.iter().map(|_| Ok(0)).collect();
        let Some(&first) = listeners.first() else { return answered };
        handshakes::wait_for_handshakes(first, || self.answer_queues(listeners, &mut answered));
        self.answer_queues(listeners, &mut answered);
        answered
    }

    /// One round of [`Master::answer_queue`] over `listeners`, adding to
    /// `answered` (each one's count so far, or its error).
    fn answer_queues(&mut self, listeners: &[RawFd], answered: &mut [io::Result<usize>]) {
        for (&listener, count) in listeners.iter().zip(answered.iter_mut()) {
            let Ok(so_far) = count else { continue };
            *count = self.answer_queue(listener).map(|more| *so_far + more);
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
    pub(super) fn answer_queue(&mut self, listener: RawFd) -> io::Result<usize> {
        sys::set_nonblocking(listener)?;
        let now = Instant::now();
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
