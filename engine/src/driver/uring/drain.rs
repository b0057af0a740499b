//! The drain on the ring: accepts cancelled, what waits on a listener of
//! the worker's own taken before it is let go, every connection told.

use std::io;

use io_uring::opcode;
use io_uring::types::CancelBuilder;

use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::driver::{next_queued, Origin};
use crate::token::{self, Op};

impl UringWorker<'_> {
    pub(super) fn start_drain(&mut self) -> io::Result<()> {
        if !self.core.start_drain() {
            return Ok(());
        }
        if self.accepts_armed > 0 {
            let all_accepts = CancelBuilder::user_data(token::encode(Op::Accept, 0, 0)).all();
            self.push_ignored(opcode::AsyncCancel2::new(all_accepts).build())?;
        }
        if self.core.sources.own_listener {
            // Nobody else accepts there: take what is queued, then let it go.
            if let Some(listener) = self.core.sources.listener.take() {
                while self.conns.vacant() > 0 {
                    let Some(fd) = next_queued(&listener) else { break };
                    self.adopt(RingSocket::Plain(fd), Origin::Accepted)?;
                }
            }
        }
        self.core.publish_drain();
        self.core.drain_connections(&mut self.conns, |entry| &mut entry.conn);
        Ok(())
    }
}
