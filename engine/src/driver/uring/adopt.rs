//! A connection taken into a slot, accepted or handed over: the room the
//! worker has, a full worker's longest-idle connection closed for it, and
//! the connections the ring accepted with no slot left, which wait for one.

use std::io;

use super::connection::Slot;
use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::driver::Origin;

impl UringWorker<'_> {
    /// Connections the worker may still take: free slots, and no more than
    /// its table of direct descriptors holds when its accepts fill that.
    pub(super) fn room(&self) -> usize {
        self.core.capacity().saturating_sub(self.live())
    }

    /// Open connections: those in slots, and those the ring accepted that
    /// wait for one.
    pub(super) fn live(&self) -> usize {
        self.conns.len() + self.slotless.len()
    }

    /// Takes a connection into the slab and starts receiving on it (a handed
    /// one once its batch's ack is out: `handed::take_message`), closing
    /// the longest-idle connection first when the worker is full; false
    /// when every slot is taken by a busy one: `socket` is closed then (the
    /// master hands a declined one on), unless the ring accepted it. An
    /// accept armed for a free slot completes whenever a client comes, and
    /// a connection the master handed over (`reuseport`'s rescue of a full
    /// worker's queue) may have taken that slot meanwhile; the kernel has
    /// taken the client off the queue by then, and a close would reset it
    /// unanswered. It waits for a slot instead ([`UringWorker::adopt_slotless`]).
    pub(super) fn adopt(&mut self, socket: RingSocket, origin: Origin) -> io::Result<bool> {
        if self.room() == 0 {
            // Full: the longest-idle keep-alive connection makes room, if any.
            self.reclaim_oldest()?;
        }
        // A slot freed while accepted ones wait is theirs, not a hand-off's.
        let waiting = if origin == Origin::Handed { self.slotless.len() } else { 0 };
        let slot = if self.conns.vacant() > waiting { self.conns.insert() } else { None };
        let Some((slot, generation)) = slot else {
            if let RingSocket::Direct(index) = socket {
                if self.slotless.len() < self.slotless.capacity() {
                    self.slotless.push(index);
                    return Ok(false);
                }
                self.push_ignored(socket.into_close())?;
            }
            return Ok(false);
        };
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            *entry = Slot { socket: Some(socket), origin, ..Slot::default() };
            let socket = entry.socket.as_ref().and_then(RingSocket::plain);
            self.core.open_connection(&mut entry.conn, slot, origin, socket);
        }
        match origin {
            // Served once the master knows it is ours: `handed::take_message`.
            Origin::Handed => self.core.handed_now.push((slot, generation)),
            Origin::Accepted => self.drive(slot, generation)?,
        }
        Ok(true)
    }

    /// Gives the connections the ring accepted with no slot left the slots
    /// freed since (or an idle one's, closed for them), oldest first.
    pub(super) fn adopt_slotless(&mut self) -> io::Result<()> {
        while !self.slotless.is_empty() {
            if self.conns.vacant() == 0 && !self.reclaim_oldest()? {
                break;
            }
            let index = self.slotless.remove(0);
            self.adopt(RingSocket::Direct(index), Origin::Accepted)?;
        }
        Ok(())
    }
}
