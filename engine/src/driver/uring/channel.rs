//! The master's channel on the ring: its receive (what it brings is taken
//! by `handed::take_message`, shared with epoll, through this driver's
//! [`Driver`]), and the turn's acks published.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::opcode;
use io_uring::types::Fd;

use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::driver::core::Core;
use crate::driver::handed::{self, Driver};
use crate::driver::Origin;
use crate::token::{self, Op};

impl UringWorker<'_> {
    pub(super) fn arm_channel(&mut self) -> io::Result<()> {
        let Some(channel) = self.core.sources.channel.as_ref().map(|c| c.as_raw_fd()) else { return Ok(()) };
        let header = self.core.inbox.prepare_recv();
        let recv = opcode::RecvMsg::new(Fd(channel), header).flags(libc::MSG_CMSG_CLOEXEC as u32).build();
        self.push(recv.user_data(token::encode(Op::Channel, 0, 0)))
    }

    pub(super) fn on_channel(&mut self, result: i32) -> io::Result<()> {
        if result == -libc::EINTR {
            return self.arm_channel();
        }
        // A message of no bytes with fds is no end: its fds are taken (and closed).
        if result < 0 || self.core.inbox.is_end_of_stream(result as usize) {
            // The master is gone or done with us (or the channel broke): finish up and exit.
            self.core.channel_open = false;
            return self.start_drain();
        }
        if !handed::take_message(self, result as usize)? {
            return Ok(());
        }
        self.arm_channel()
    }

    /// Publishes the acks of the batches this turn took, together.
    pub(super) fn publish_acks(&mut self) -> io::Result<()> {
        if self.core.flush_acks(self.live()) {
            return Ok(());
        }
        self.master_gone()
    }
}

impl<'a> Driver<'a> for UringWorker<'a> {
    fn core(&mut self) -> &mut Core<'a> {
        &mut self.core
    }

    fn live(&self) -> usize {
        UringWorker::live(self)
    }

    fn adopt_handed(&mut self, fd: OwnedFd) -> io::Result<bool> {
        self.adopt(RingSocket::Plain(fd), Origin::Handed)
    }

    fn reclaim_oldest(&mut self) -> io::Result<bool> {
        UringWorker::reclaim_oldest(self)
    }

    fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        UringWorker::drive(self, slot, generation)
    }

    fn start_drain(&mut self) -> io::Result<()> {
        UringWorker::start_drain(self)
    }
}
