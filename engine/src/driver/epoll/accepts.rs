//! Where the worker's connections come from on a listener: the listener
//! watched (`EPOLLEXCLUSIVE`) while the worker can take connections, its
//! accepts, the step back that lets another worker be woken, and a full
//! worker's room made when clients wait on it.

use std::io;
use std::os::fd::AsFd;

use super::EpollWorker;
use crate::driver::Origin;
use crate::sys::epoll;
use crate::sys::socket;
use crate::token::{self, Op};

/// Connections one turn accepts before it serves what it has.
const ACCEPTS_PER_TURN: usize = 64;
/// Connections a worker accepts on a shared listener before it lets another
/// worker be woken first ([`EpollWorker::step_back`]): fair within a few
/// connections, for two `epoll_ctl` calls per that many.
const STEP_BACK_EVERY: usize = 16;

impl EpollWorker<'_> {
    /// Puts the listener in the epoll set when the worker can take
    /// connections, and takes it out when it cannot (full, starved, draining).
    pub(super) fn watch_listener(&mut self) -> io::Result<()> {
        if self.core.sources.listener.is_some() {
            self.core.note_room(self.conns.vacant());
        }
        let Some(listener) = &self.core.sources.listener else { return Ok(()) };
        let wanted = !self.core.draining && !self.accepts_starved && self.conns.vacant() > 0;
        if wanted && !self.listening {
            let events = epoll::IN | epoll::EXCLUSIVE;
            if self.epoll.add(listener.as_fd(), events, token::encode(Op::Accept, 0, 0)).is_err() {
                self.listener_unwatched();
                return Ok(());
            }
        } else if !wanted && self.listening {
            // EPOLLEXCLUSIVE cannot be modified, only deleted and added again.
            self.epoll.delete(listener.as_fd())?;
        }
        self.listening = wanted;
        Ok(())
    }

    /// The kernel would not watch the listener again (`ENOMEM`, or the
    /// user's `fs.epoll.max_user_watches`, which other workers'
    /// connections may have taken since this one let its watch go): as for
    /// a connection it cannot watch, the worker leaves the queue to the
    /// others until its next tick, and serves on with what it holds. Until
    /// 2026-12-07 the error ended its loop, and every connection with it.
    fn listener_unwatched(&mut self) {
        self.listening = false;
        self.accepts_starved = true;
    }

    pub(super) fn on_listener(&mut self) -> io::Result<()> {
        let mut accepted = 0;
        for _ in 0..ACCEPTS_PER_TURN {
            if self.conns.vacant() == 0 || self.core.draining {
                break;
            }
            let Some(listener) = &self.core.sources.listener else { break };
            match socket::accept(listener.as_fd()) {
                Ok(Some(fd)) => {
                    if !self.adopt(fd, Origin::Accepted)? {
                        // It could not be watched, and is closed: leave the
                        // queue to the other workers until the next tick.
                        self.core.counts.rejected += 1;
                        self.accepts_starved = true;
                        break;
                    }
                    accepted += 1;
                }
                Ok(None) => break,
                // EINVAL: the listener no longer listens (the master stopping
                // shut it down just before this worker's drain began).
                Err(e) if e.raw_os_error().is_some_and(|n| crate::sys::out_of_resources(n) || n == libc::EINVAL) => {
                    if e.raw_os_error().is_some_and(crate::sys::out_of_fds) {
                        self.core.hit_fd_limit(self.conns.len());
                    }
                    self.accepts_starved = true;
                    break;
                }
                // The connection died in the queue, or the like: try the next one.
                Err(_) => {}
            }
        }
        self.accepted_since_step_back += accepted;
        if self.accepted_since_step_back >= STEP_BACK_EVERY && self.listening {
            self.accepted_since_step_back = 0;
            self.step_back()?;
        }
        self.watch_listener()
    }

    /// On the tick, a full worker with idle connections and a queue on its
    /// listener closes a small batch of the longest idle
    /// ([`Core::reclaims_due`](crate::driver::core::Core::reclaims_due)); the
    /// listener is watched again after.
    pub(super) fn reclaim_for_queue(&mut self) {
        for _ in 0..self.core.reclaims_due(self.conns.vacant()) {
            if !self.reclaim_oldest() {
                break;
            }
        }
    }

    /// Moves this worker's watch on the shared listener to the back of the
    /// listener's wait queue. With `EPOLLEXCLUSIVE` the kernel wakes the
    /// first watch in that queue whose worker is waiting: left in place, the
    /// worker that registered first is woken for every new connection that
    /// finds it idle, and takes nearly all of them (measured
    /// 87-94 % at 1,000 keep-alive connections). Having taken
    /// [`STEP_BACK_EVERY`], it steps back, and the next connection wakes
    /// another worker.
    fn step_back(&mut self) -> io::Result<()> {
        let Some(listener) = &self.core.sources.listener else { return Ok(()) };
        // EPOLLEXCLUSIVE cannot be modified, only deleted and added again.
        self.epoll.delete(listener.as_fd())?;
        if self.epoll.add(listener.as_fd(), epoll::IN | epoll::EXCLUSIVE, token::encode(Op::Accept, 0, 0)).is_err() {
            self.listener_unwatched();
        }
        Ok(())
    }
}
