//! A connection's end on the ring: its socket closed (a handed-over one's
//! FIN sent first, its close a moment late) and its ops cancelled, a direct
//! descriptor's half-close waited for, and the slot given back once every
//! op has completed.

use std::io;
use std::os::fd::AsFd;

use io_uring::opcode;

use super::super::ring_socket::RingSocket;
use super::super::UringWorker;
use super::ResetWatch;
use crate::driver::Origin;
use crate::sys::socket::half_close;
use crate::token::{self, Op};

impl UringWorker<'_> {
    /// Closes the socket through the ring and cancels its ops; the slot is
    /// given back once they have all completed.
    pub(in crate::driver::uring) fn begin_close(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.closing {
            return Ok(());
        }
        entry.closing = true;
        self.core.idle.remove(slot);
        // A half-close on the way closes the socket when it ends (`on_half_closed`).
        let mut socket = if entry.half_closing { None } else { entry.socket.take() };
        let (receiving, sending, receiving_spare) = (entry.receiving, entry.conn.is_sending(), entry.receiving_spare);
        let watching = entry.reset_watch == ResetWatch::Armed;
        if entry.origin == Origin::Handed {
            if let Some(RingSocket::Plain(handed)) = socket.take() {
                // Our FIN now, not when the master closes its copy, and our
                // close a moment later (see `Origin`). A direct call, as for
                // `take_half_close`: the number is closed later.
                half_close(handed.as_fd());
                socket = self.core.late_closes.keep(self.core.now, handed).map(RingSocket::Plain);
            }
        }
        if receiving {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build())?;
        }
        if sending {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Send, slot, generation)).build())?;
        }
        if receiving_spare {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::RecvSpare, slot, generation)).build())?;
        }
        if watching {
            self.push_ignored(opcode::AsyncCancel::new(token::encode(Op::Reset, slot, generation)).build())?;
        }
        if let Some(socket) = socket {
            self.push_ignored(socket.into_close())?;
        }
        self.release_if_done(slot, generation);
        Ok(())
    }

    /// A direct descriptor's half-close ended: a close that waited for it goes now.
    pub(in crate::driver::uring) fn on_half_closed(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        entry.half_closing = false;
        if !entry.closing {
            return Ok(());
        }
        if let Some(socket) = entry.socket.take() {
            self.push_ignored(socket.into_close())?;
        }
        self.release_if_done(slot, generation);
        Ok(())
    }

    pub(in crate::driver::uring) fn release_if_done(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        let watching = entry.reset_watch == ResetWatch::Armed;
        let receiving = entry.receiving || entry.receiving_spare;
        if entry.closing && !receiving && !entry.conn.is_sending() && !entry.half_closing && !watching {
            while let Some(bid) = self.held.pop_front(&mut entry.held) {
                self.bufs.recycle(bid);
            }
            self.core.release_slot(slot, &mut entry.conn);
            self.core.idle.remove(slot);
            self.conns.remove(slot);
        }
    }
}
