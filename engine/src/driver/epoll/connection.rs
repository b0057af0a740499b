//! One connection on the epoll driver: what its socket's events mean,
//! reads into the worker's receive buffer, sends of its queued replies, and
//! its close.

use std::io;
use std::os::fd::AsFd;

use super::{EpollWorker, READS_PER_TURN};
use crate::driver::Origin;
use crate::sys::epoll;
use crate::sys::socket::{self, half_close};

impl EpollWorker<'_> {
    pub(super) fn on_socket(&mut self, slot: u32, generation: u32, events: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if events & (epoll::OUT | epoll::ERR_HUP) != 0 {
            entry.write_blocked = false;
        }
        if events & (epoll::IN | epoll::RDHUP | epoll::ERR_HUP) != 0 {
            entry.readable = true;
        }
        if events & (epoll::RDHUP | epoll::ERR_HUP) != 0 {
            entry.hung_up = true;
        }
        self.drive(slot, generation)
    }

    /// Does what the connection asks, reading and sending until it waits for
    /// the socket, has had its turn's reads, or is closed; then notes whether
    /// it is left idle (the idle list's order).
    pub(super) fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let result = self.step(slot, generation);
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            // Nothing unread known to wait in its socket, nor a turn of reads to come.
            let idle = entry.conn.is_reclaimable() && !entry.readable && !self.more_to_read.contains(slot);
            self.core.idle.note(slot, idle, entry.conn.idle_since());
        }
        result
    }

    /// Closes the connection idle longest (a full worker making room), as
    /// its idle timeout would; false when there is none, or while draining.
    /// One whose next request has come since its last event (its event not
    /// handled yet) is passed over: it is not idle.
    pub(super) fn reclaim_oldest(&mut self) -> bool {
        if self.core.draining {
            return false;
        }
        self.core.idle.advance(self.core.now);
        while let Some(slot) = self.core.idle.oldest() {
            self.core.idle.remove(slot);
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            let input = entry.fd.as_ref().is_some_and(|fd| socket::input_waiting(fd.as_fd()).unwrap_or(true));
            if input {
                // Its event comes: `drive` lists it again once it is idle.
                entry.readable = true;
                continue;
            }
            self.close(slot, generation);
            self.core.counts.idle_reclaimed += 1;
            return true;
        }
        false
    }

    fn step(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let mut reads = 0;
        loop {
            self.send_due(slot, generation);
            let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
            // Due once the last answer is sent, which `send_due` just did:
            // now, not at the connection's next event.
            if entry.conn.take_half_close() {
                if let Some(fd) = &entry.fd {
                    half_close(fd.as_fd());
                }
            }
            if entry.conn.is_closed() {
                self.close(slot, generation);
                return Ok(());
            }
            if !entry.readable || !entry.conn.wants_read() {
                return Ok(());
            }
            if reads == READS_PER_TURN {
                self.more_to_read.push(slot);
                return Ok(());
            }
            reads += 1;
            self.read_once(slot, generation);
        }
    }

    /// Sends while the connection has replies due and the socket takes them.
    fn send_due(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        while !entry.write_blocked {
            let (_, mut ctx) = self.core.parts(slot);
            let Some(header) = entry.conn.poll_send(&mut ctx) else { return };
            let Some(fd) = entry.fd.as_ref() else { return };
            // SAFETY: `header` points into the connection's outgoing slices, which
            // point into the response pages; both stay put until `handle_sent`.
            let sent = unsafe { socket::send_slices(fd.as_fd(), header) };
            let (carry, mut ctx) = self.core.parts(slot);
            match sent {
                Ok(n) => {
                    if n == 0 {
                        entry.write_blocked = true;
                    }
                    let answered = entry.conn.handle_sent(n, carry, &mut ctx);
                    self.core.counts.requests += u64::from(answered);
                }
                Err(_) => entry.conn.handle_send_failed(&mut ctx),
            }
        }
    }

    fn read_once(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        let Some(fd) = entry.fd.as_ref() else { return };
        // No more than the connection can hold should it pause mid-read: the
        // receive buffer is everyone's, what is left in it cannot wait there.
        let room = entry.conn.input_room(self.core.carry_cap).min(self.recv_buffer.len());
        if room == 0 {
            return;
        }
        let read = socket::recv(fd.as_fd(), &mut self.recv_buffer[..room]);
        let (carry, mut ctx) = self.core.parts(slot);
        match read {
            Ok(Some(0)) => {
                entry.readable = false;
                entry.conn.handle_peer_closed(&mut ctx);
            }
            Ok(Some(n)) => {
                // A short read emptied the socket; a full one may have left
                // more, and a FIN signalled is still to be read.
                let more = n == room;
                entry.readable = more || entry.hung_up;
                // A draining connection closes with its last answer when the
                // socket is empty after a read: a full one may have taken
                // exactly what there was, so it is asked, not guessed (and
                // the settle would never come: the next read finds nothing
                // and tells the connection nothing).
                let waiting = more && (!ctx.draining || socket::input_waiting(fd.as_fd()).unwrap_or(true));
                let taken = entry.conn.handle_input(&self.recv_buffer[..n], carry, waiting, &mut ctx);
                debug_assert_eq!(taken, n, "a read never exceeds what the connection can hold");
                if taken < n {
                    entry.conn.handle_read_error();
                }
                self.core.work_for(entry.conn.take_parsed());
            }
            Ok(None) => entry.readable = false,
            Err(_) => entry.conn.handle_read_error(),
        }
    }

    /// Gives the connections whose turn ended with input left their next turn.
    pub(super) fn read_more(&mut self) -> io::Result<()> {
        let waiting = self.more_to_read.len();
        for i in 0..waiting {
            let slot = self.more_to_read.take(i);
            if let Some(generation) = self.conns.generation(slot) {
                self.drive(slot, generation)?;
            }
        }
        self.more_to_read.passed(waiting);
        Ok(())
    }

    /// Closes the socket (a handed-over one a moment later, its FIN sent
    /// now, out of the epoll set at once) and frees the slot.
    fn close(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        match (entry.fd.take(), entry.origin) {
            (Some(handed), Origin::Handed) => {
                // See `Origin`. Out of the epoll set first: the socket stays
                // open a while (and in the master), and what our FIN sets off
                // must not wake this loop.
                let _ = self.epoll.delete(handed.as_fd());
                half_close(handed.as_fd());
                drop(self.core.late_closes.keep(self.core.now, handed));
            }
            (fd, Origin::Accepted) => drop(fd),
            (None, Origin::Handed) => {}
        }
        self.core.release_slot(slot, &mut entry.conn);
        self.core.idle.remove(slot);
        self.conns.remove(slot);
    }
}
