//! The drain on epoll: the shutdown fd and the listener unwatched, what
//! waits on a listener of the worker's own taken before it is let go, every
//! connection told.

use std::io;
use std::os::fd::AsFd;

use super::EpollWorker;
use crate::driver::{next_queued, Origin};

impl EpollWorker<'_> {
    pub(super) fn start_drain(&mut self) -> io::Result<()> {
        if !self.core.start_drain() {
            return Ok(());
        }
        // The shutdown fd stays readable: stop watching it.
        if let Some(shutdown) = &self.core.sources.shutdown {
            let _ = self.epoll.delete(shutdown.as_fd());
        }
        self.watch_listener()?;
        if self.core.sources.own_listener {
            // Nobody else accepts there: take what is queued, then let it go.
            if let Some(listener) = self.core.sources.listener.take() {
                while self.conns.vacant() > 0 {
                    let Some(fd) = next_queued(&listener) else { break };
                    self.adopt(fd, Origin::Accepted)?;
                }
            }
        }
        self.core.publish_drain();
        self.core.drain_connections(&mut self.conns, |entry| &mut entry.conn);
        Ok(())
    }
}
