//! The master's channel on the ring: its receive, a batch of connections
//! adopted and acknowledged (the ack out before they are served), the
//! turn's acks published, and the master gone.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::opcode;
use io_uring::types::Fd;

use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::channel::Tag;
use crate::driver::{adopt_batch, Origin};
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
        if result <= 0 {
            // The master is gone or done with us (or the channel broke): finish up and exit.
            self.core.channel_open = false;
            return self.start_drain();
        }
        let mut batch = self.core.take_batch(result as usize);
        let (adopted, declined) = adopt_batch(&mut batch, |fd| self.adopt(RingSocket::Plain(fd), Origin::Handed))?;
        self.core.counts.rejected += declined as u64;
        if batch.short() > 0 {
            self.core.batch_hit_fd_limit(self.live());
        }
        for _ in 0..batch.short() {
            if !self.reclaim_oldest()? {
                break;
            }
        }
        // The ack is published before these connections' receives can reach
        // the kernel (a full submission queue submits mid-turn): a worker that
        // dies after reading a request takes its connection along (as on epoll).
        let acked = self.core.acknowledge(&batch.received, adopted, self.live()) && self.core.flush_acks(self.live());
        for i in 0..self.handed_now.len() {
            let (slot, generation) = self.handed_now[i];
            self.drive(slot, generation)?;
        }
        self.handed_now.clear();
        if !acked {
            return self.master_gone();
        }
        if batch.received.tag == Some(Tag::Drain) {
            self.start_drain()?;
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

    /// The master is gone (a wake-up for it could not be sent): finish up and exit.
    fn master_gone(&mut self) -> io::Result<()> {
        self.core.channel_open = false;
        self.start_drain()
    }
}
