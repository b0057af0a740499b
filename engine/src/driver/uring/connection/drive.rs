//! What a connection's state machine asks for after an event, done on the
//! ring: held input offered, a half-close, a send (and its completion), a
//! receive armed or cancelled (back-pressure), the close begun; and whether
//! the connection is left idle.

use std::io;
use std::os::fd::AsFd;

use io_uring::opcode;
use io_uring::types::Fixed;

use super::super::ring_socket::RingSocket;
use super::super::UringWorker;
use crate::bufring;
use crate::sys::socket::half_close;
use crate::token::{self, Op};
use crate::uring;

impl UringWorker<'_> {
    /// Does what the connection asks after an event: half-close, close, send,
    /// start or stop reading; then notes whether it is left idle (the idle
    /// list's order).
    pub(in crate::driver::uring) fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let result = self.step(slot, generation);
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            // Nothing held from its socket, nor a FIN or a half-close pending,
            // nor a next request left in it for want of a buffer (`starved`:
            // a reclaim passes it over, so it is no room to count).
            let idle = entry.conn.is_reclaimable()
                && !entry.starved
                && !entry.closing
                && !entry.half_closing
                && !entry.fin_held
                && entry.held.is_empty()
                && entry.socket.is_some();
            self.core.idle.note(slot, idle, entry.conn.idle_since());
        }
        result
    }

    fn step(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.closing {
            return Ok(());
        }
        if !entry.held.is_empty() && entry.conn.wants_read() {
            self.take_held(slot, generation);
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.fin_held && entry.held.is_empty() {
            entry.fin_held = false;
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.handle_peer_closed(&mut ctx);
        }
        if entry.conn.take_half_close() {
            match &entry.socket {
                // A direct call, not a ring op: the kernel may run an io_uring shutdown
                // later in a worker thread and look the fd number up only then, when it
                // may already belong to the next connection. This path is rare.
                Some(RingSocket::Plain(fd)) => half_close(fd.as_fd()),
                // No number to call with: a ring op, and the close waits for it.
                Some(RingSocket::Direct(index)) => {
                    entry.half_closing = true;
                    let shutdown = opcode::Shutdown::new(Fixed(*index), libc::SHUT_WR).build();
                    self.push(shutdown.user_data(token::encode(Op::HalfClose, slot, generation)))?;
                }
                None => {}
            }
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.conn.is_closed() {
            return self.begin_close(slot, generation);
        }
        let (_, mut ctx) = self.core.parts(slot);
        if let Some(header) = entry.conn.poll_send(&mut ctx) {
            let Some(socket) = &entry.socket else { return Ok(()) };
            let fd = socket.fd();
            // One slice (a keep-alive answer) needs no msghdr: a plain send is cheaper.
            let send = match entry.conn.single_slice() {
                Some((start, len)) => opcode::Send::new(fd, start, send_len(len)).flags(libc::MSG_NOSIGNAL).build(),
                None => opcode::SendMsg::new(fd, header).flags(libc::MSG_NOSIGNAL as u32).build(),
            };
            let send = send.flags(socket.flags()).user_data(token::encode(Op::Send, slot, generation));
            self.push(send)?;
        }
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        // Held input goes first: no new reads until it is all taken.
        let wants = entry.conn.wants_read() && entry.held.is_empty();
        if wants && entry.awaiting_buffer && entry.hung_up {
            // Its client closed: what it sent is all in the socket, and is
            // read without a buffer of the ring.
            self.recv_into_spare(slot, generation)?;
        } else if wants && !entry.receiving && !entry.awaiting_buffer && !entry.receiving_spare {
            let Some(socket) = &entry.socket else { return Ok(()) };
            entry.receiving = true;
            entry.armed_at = self.bufs.returned();
            entry.armed_tick = self.ticks;
            let recv = if entry.bundling {
                let bundle = opcode::RecvMultiBundle::new(socket.fd(), bufring::GROUP).build();
                match self.bundle_cap {
                    Some(cap) => uring::with_len(bundle, cap),
                    None => bundle,
                }
            } else {
                opcode::RecvMulti::new(socket.fd(), bufring::GROUP).build()
            };
            // The ring was found empty and no buffer has come back since: a
            // receive that took one at once would fail at once on an empty
            // socket (an idle client, one just accepted) and wait in
            // `buffer_waiters` ahead of those whose input waits, each wake
            // spent on it while the buffers it was for lay unused.
            let recv =
                if self.ring_found_empty_at == Some(self.bufs.returned()) { uring::poll_first(recv) } else { recv };
            let recv = recv.flags(socket.flags());
            self.push(recv.user_data(token::encode(Op::Recv, slot, generation)))?;
        } else if !wants && entry.receiving && !entry.cancelling {
            // Back-pressure: stop reading until the queued replies are sent.
            entry.cancelling = true;
            let cancel = opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build();
            self.push_ignored(cancel)?;
        }
        self.watch_for_reset(slot, generation)
    }

    pub(in crate::driver::uring) fn on_send(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        let (carry, mut ctx) = self.core.parts(slot);
        if result < 0 {
            entry.conn.handle_send_failed(&mut ctx);
        } else {
            entry.stall.sent();
            let answered = entry.conn.handle_sent(result as usize, carry, &mut ctx);
            self.core.counts.requests += u64::from(answered);
        }
        if entry.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        self.drive(slot, generation)
    }
}

/// A send op's length: at most `u32::MAX`, the rest going in the sends after
/// it, as after any partial send (the kernel takes under 2 GiB at once
/// anyway). Cut to 32 bits instead, 4 GiB of a long body left would ask for
/// a send of nothing.
fn send_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::send_len;

    #[test]
    fn a_send_longer_than_a_u32_asks_for_what_a_u32_holds() {
        assert_eq!(send_len(17), 17);
        assert_eq!(send_len(u32::MAX as usize), u32::MAX);
        assert_eq!(send_len(1 << 32), u32::MAX, "4 GiB left is not a send of nothing");
        assert_eq!(send_len((1 << 32) + 5), u32::MAX);
    }
}
