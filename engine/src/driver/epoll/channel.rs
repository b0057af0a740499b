//! The master's channel on epoll: its messages read while any wait (what
//! they bring is taken by `handed::take_message`, shared with io_uring,
//! through this driver's [`Driver`]), its end of stream a drain.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::EpollWorker;
use crate::channel::recv_nonblocking;
use crate::driver::core::Core;
use crate::driver::handed::{self, Driver};
use crate::driver::Origin;

impl EpollWorker<'_> {
    pub(super) fn on_channel(&mut self) -> io::Result<()> {
        loop {
            let Some(channel) = self.core.sources.channel.as_ref() else { return Ok(()) };
            let len = match recv_nonblocking(channel.as_fd(), &mut self.core.inbox) {
                Ok(Some(len)) => Some(len),
                Ok(None) => return Ok(()),
                Err(_) => None,
            };
            // A message of no bytes with fds is no end: its fds are taken (and closed).
            let Some(len) = len.filter(|&len| !self.core.inbox.is_end_of_stream(len)) else {
                // The master is gone or done with us: finish up and exit.
                self.core.channel_open = false;
                if let Some(channel) = self.core.sources.channel.take() {
                    let _ = self.epoll.delete(channel.as_fd());
                }
                return self.start_drain();
            };
            if !handed::take_message(self, len)? {
                return Ok(());
            }
        }
    }
}

impl<'a> Driver<'a> for EpollWorker<'a> {
    fn core(&mut self) -> &mut Core<'a> {
        &mut self.core
    }

    fn live(&self) -> usize {
        self.conns.len()
    }

    fn adopt_handed(&mut self, fd: OwnedFd) -> io::Result<bool> {
        self.adopt(fd, Origin::Handed)
    }

    fn reclaim_oldest(&mut self) -> io::Result<bool> {
        Ok(EpollWorker::reclaim_oldest(self))
    }

    fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        EpollWorker::drive(self, slot, generation)
    }

    fn start_drain(&mut self) -> io::Result<()> {
        EpollWorker::start_drain(self)
    }
}
