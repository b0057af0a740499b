//! The epoll reactor's wait: the ops submitted since the last one started,
//! the batch wait slept out when busy, and the ready fds' parked ops tried
//! (see the batching in `mod.rs`'s overview).

use std::io;
use std::os::fd::{AsFd, RawFd};
use std::time::Instant;

use super::EpollReactor;
use crate::reactor::{sys, Completion};

impl EpollReactor {
    /// [`Reactor::wait`](crate::reactor::Reactor::wait)'s starts, sleeps and `epoll_wait`s.
    pub(super) fn gather(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        let batch_wait = self.batch_wait.now();
        out.clear();
        out.append(&mut self.cancelled);
        while let Some(op) = self.fresh.pop_front() {
            self.start(op, out);
        }
        let before_retries = out.len();
        for fd in std::mem::take(&mut self.again) {
            self.retry(fd, false, out);
        }
        let retried = out.len() - before_retries;
        // What the ops just started completed with (sends, mostly) needs no
        // prompt answer: busy, it goes back with what comes during the sleep.
        let started = out.len();
        let mut began = Instant::now();
        let mut blocking = out.is_empty() && self.again.is_empty();
        // Busy: sleep out the batch wait, then take what came (one wake-up);
        // if nothing did, the spell is over and the wait blocks after all.
        let mut slept = false;
        if retried == 0 && self.again.is_empty() && std::mem::take(&mut self.busy) {
            std::thread::sleep(batch_wait);
            (blocking, slept) = (false, true);
        }
        loop {
            let timeout = if blocking { -1 } else { 0 };
            sys::epoll_wait(self.epoll.as_fd(), &mut self.events, timeout)?;
            for i in 0..self.events.len() {
                let event = self.events[i];
                let fd = event.u64 as RawFd;
                let happened = event.events;
                let broken = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
                if happened & (libc::EPOLLOUT as u32 | broken) != 0 {
                    self.retry(fd, true, out);
                }
                if happened & ((libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | broken) != 0 {
                    self.retry(fd, false, out);
                }
            }
            let waited = began.elapsed();
            if blocking && !out.is_empty() && waited < batch_wait {
                // Busy: let more gather until the batch wait after the wait began,
                // as the ring's minimum-wait timeout does, then take it all.
                std::thread::sleep(batch_wait - waited);
                (blocking, self.busy) = (false, true);
                continue;
            }
            if slept && out.len() == started {
                if started > 0 {
                    // Only the started ops' completions: the spell is over.
                    return Ok(());
                }
                // Nothing came while it slept: wait for the next event.
                (blocking, slept, began) = (true, false, Instant::now());
                continue;
            }
            if slept {
                self.busy = true;
            }
            if !out.is_empty() || !blocking {
                return Ok(());
            }
        }
    }
}
