//! A full worker's room made by closing idle keep-alive connections, the
//! longest idle first: one for a connection that comes, a small batch on
//! the tick when clients wait on the listener.

use std::io;
use std::os::fd::AsFd;

use io_uring::opcode;

use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::driver::Origin;
use crate::sys::socket::{self, half_close};
use crate::token::{self, Op};

impl UringWorker<'_> {
    /// On the tick, a full worker with idle connections and a queue on its
    /// listener closes a small batch of the longest idle, so accepts are
    /// armed for the waiting ones
    /// ([`Core::reclaims_due`](crate::driver::core::Core::reclaims_due)). An
    /// accept cannot be armed first: it would make a direct descriptor in a
    /// full table.
    pub(super) fn reclaim_for_queue(&mut self) -> io::Result<()> {
        for _ in 0..self.core.reclaims_due(self.room()) {
            if !self.reclaim_oldest()? {
                break;
            }
        }
        Ok(())
    }

    /// Whether this turn's completions hold input for the connection in
    /// `slot` (bytes, or bytes left in its socket for want of a buffer).
    fn received_this_turn(&self, slot: u32, generation: u32) -> bool {
        self.completions.iter().any(|&(user_data, result, _)| {
            (result > 0 || result == -libc::ENOBUFS) && token::decode(user_data) == Some((Op::Recv, slot, generation))
        })
    }

    /// Closes the connection idle longest, if idle for `MIN_IDLE_MS` (a full worker making room), with
    /// the FIN its idle timeout would send, and frees its slot at once: it
    /// has no send, half-close or held input outstanding, and what its
    /// cancelled receive still completes finds the slot's generation moved
    /// on and gives its buffer back. False when there is none, or while
    /// draining.
    pub(super) fn reclaim_oldest(&mut self) -> io::Result<bool> {
        if self.core.draining {
            return Ok(false);
        }
        self.core.idle.advance(self.core.now);
        let (slot, generation) = loop {
            let Some(slot) = self.core.idle.oldest() else { return Ok(false) };
            self.core.idle.remove(slot);
            let Some(generation) = self.conns.generation(slot) else { continue };
            // A next request received as the loop entered the kernel, its
            // completion still to come in this turn's batch: passed over
            // (`drive` lists it again once it is idle).
            if self.received_this_turn(slot, generation) {
                continue;
            }
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            // Starved: a next request waits in its socket for a receive buffer.
            if entry.closing || entry.half_closing || entry.conn.is_sending() || !entry.held.is_empty() || entry.starved
            {
                // Not idle after all (the list is noted after every event): left alone.
                continue;
            }
            // A next request come since: its receive runs when the loop next
            // enters the kernel (deferred task work), so it is still in the
            // socket. Passed over too. A direct descriptor has no number to
            // look with.
            if let Some(RingSocket::Plain(fd)) = &entry.socket {
                if socket::input_waiting(fd.as_fd()).unwrap_or(true) {
                    continue;
                }
            }
            break (slot, generation);
        };
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(false) };
        let receiving = entry.receiving;
        let mut socket = entry.socket.take();
        if entry.origin == Origin::Handed {
            if let Some(RingSocket::Plain(handed)) = socket.take() {
                // As in `begin_close`: our FIN now, our close a moment later.
                half_close(handed.as_fd());
                socket = self.core.late_closes.keep(self.core.now, handed).map(RingSocket::Plain);
            }
        }
        self.core.release_slot(slot, &mut entry.conn);
        self.conns.remove(slot);
        if receiving {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build())?;
        }
        if let Some(socket) = socket {
            self.push_ignored(socket.into_close())?;
        }
        self.core.counts.idle_reclaimed += 1;
        Ok(true)
    }
}
