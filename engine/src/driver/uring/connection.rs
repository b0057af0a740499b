//! One connection on the io_uring driver: the ops its state machine asks
//! for (receive, send, half-close, close), what their completions mean, the
//! input it holds while paused, and the end of its slot once every op is done.

use std::io;
use std::os::fd::AsFd;

use io_uring::types::Fixed;
use io_uring::{cqueue, opcode};

use super::held::{Held, HeldBuffers, Stall};
use super::ring_socket::RingSocket;
use super::UringWorker;
use crate::bufring::{self, BufRing};
use crate::conn::{Connection, Context};
use crate::driver::Origin;
use crate::sys::socket::half_close;
use crate::token::{self, Op};
use crate::uring;

/// A connection and the ring ops it has outstanding.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) conn: Connection,
    /// Input waiting in receive buffers until the connection can take it.
    pub(super) held: Held,
    /// The client's FIN came while input was held: it is reported once that
    /// input is taken, since it came after it (the connection stops taking
    /// input once told the client is gone).
    pub(super) fin_held: bool,
    /// How long it has held input with no sign of its client reading (see
    /// `held.rs`: a connection whose client does not read is cut off).
    pub(super) stall: Stall,
    /// The socket, until its close is handed to the ring.
    pub(super) socket: Option<RingSocket>,
    /// The multishot receive is armed.
    pub(super) receiving: bool,
    /// Its cancellation is on the way (reading paused, or switching to bundles).
    pub(super) cancelling: bool,
    /// Its input came more than a buffer at a time: it receives in bundles.
    pub(super) bundling: bool,
    /// The close was submitted; the slot waits for its ops to end.
    pub(super) closing: bool,
    /// The ring's half-close of a direct descriptor is on the way. The
    /// kernel runs it in a worker thread and looks the table index up only
    /// then, so the close (which frees the index for the next accept) waits
    /// for it.
    pub(super) half_closing: bool,
    /// Accepted here or handed over by the master (the close sends the FIN then).
    pub(super) origin: Origin,
    /// The poll that sees a reset its receive may miss.
    pub(super) reset_watch: ResetWatch,
    /// Its last receive found no buffer in the ring (others hold them all),
    /// and no input has come since: what its client sent waits on the
    /// worker, so its timers for input wait too (`on_tick`). Until its
    /// receive, armed again, has waited a whole tick for input: then its
    /// socket was empty (`on_tick`).
    pub(super) starved: bool,
    /// Its receive found the ring empty and is not armed again until a
    /// buffer comes back (it waits in `buffer_waiters`): armed at once, it
    /// would find the ring empty again, a completion every loop turn, and
    /// the worker would spin until the holders read.
    pub(super) awaiting_buffer: bool,
    /// The ring's count of buffers given back when its receive was armed.
    pub(super) armed_at: u64,
    /// The worker's count of ticks when its receive was armed
    /// (`UringWorker::ticks`).
    pub(super) armed_tick: u64,
    /// Its [`ResetWatch`] saw its client's FIN (or hang-up): all its client
    /// sent is in the socket, and while its receive waits for a buffer it
    /// is read without one, into the worker's spare buffer (`starved.rs`).
    pub(super) hung_up: bool,
    /// Its receive into the spare buffer is on the way.
    pub(super) receiving_spare: bool,
}

/// A one-shot poll of a connection's socket, armed once input has come
/// that no send follows: part of a request, empty lines before one, input
/// while it lingers after a closing answer. A multishot receive that takes
/// the last bytes of a socket already reset posts them as more to come, then
/// waits for a wakeup the reset does not send again (Linux 6.18: input and a
/// reset together): the connection would stay until its header or body
/// deadline (minutes for a large body), holding a body buffer, or, after
/// empty lines, until its header or idle deadline (10 s, 60 s), or to the
/// end of its linger (2 s after its last input), and a drain would wait for
/// it. A poll of its own sees the socket's error as it is armed or when it
/// comes. Armed too while its receive waits for a buffer, which is told of
/// neither a reset nor a FIN until one comes back (`starved.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum ResetWatch {
    /// Not armed: no input has come that no send follows, nor has its
    /// receive waited for a buffer.
    #[default]
    Unarmed,
    /// Armed: the slot is not freed before its completion.
    Armed,
    /// Completed: not armed again, since what fired it (an error, a FIN)
    /// stays and would fire it again at once.
    Done,
}

impl UringWorker<'_> {
    /// Does what the connection asks after an event: half-close, close, send,
    /// start or stop reading; then notes whether it is left idle (the idle
    /// list's order).
    pub(super) fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()> {
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

    /// Arms the connection's [`ResetWatch`] once input is in that no send
    /// follows (part of a request, empty lines before one, input while it
    /// lingers: [`crate::conn::Connection::needs_reset_watch`]), or once its
    /// receive waits for a buffer: connections that take their requests
    /// whole (most) never need it while the ring has room.
    fn watch_for_reset(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        let wanted = entry.conn.needs_reset_watch() || entry.awaiting_buffer;
        if entry.reset_watch != ResetWatch::Unarmed || !wanted {
            return Ok(());
        }
        let Some(socket) = &entry.socket else { return Ok(()) };
        entry.reset_watch = ResetWatch::Armed;
        // The socket's error and hang-ups are always reported; `POLLRDHUP` is too.
        let poll = opcode::PollAdd::new(socket.fd(), libc::POLLRDHUP as u32).build().flags(socket.flags());
        self.push(poll.user_data(token::encode(Op::Reset, slot, generation)))
    }

    /// The [`ResetWatch`] completed: on the socket's error the connection
    /// ends (its client is gone, whatever input its receive has yet to
    /// post); the client's FIN is left to the receive, which reports it,
    /// unless that receive waits for a buffer: then the connection reads
    /// what is left without one (`starved.rs`).
    pub(super) fn on_reset_watch(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        entry.reset_watch = ResetWatch::Done;
        if entry.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        if result > 0 && result & i32::from(libc::POLLERR) != 0 {
            entry.conn.handle_read_error();
        } else if result > 0 && result & i32::from(libc::POLLRDHUP | libc::POLLHUP) != 0 {
            entry.hung_up = true;
        }
        self.drive(slot, generation)
    }

    pub(super) fn on_recv(&mut self, slot: u32, generation: u32, result: i32, flags: u32) -> io::Result<()> {
        let buffer = cqueue::buffer_select(flags);
        let Some(entry) = self.conns.get_mut(slot, generation) else {
            if let Some(bid) = buffer {
                self.bufs.recycle(bid);
            }
            return Ok(());
        };
        if !cqueue::more(flags) {
            entry.receiving = false;
            entry.cancelling = false;
        }
        if result == -libc::ENOBUFS {
            entry.starved = true;
            self.ring_found_empty_at = Some(self.bufs.returned());
        } else if result >= 0 {
            entry.starved = false;
        }
        let held = &mut self.held;
        let (carry, mut ctx) = self.core.parts(slot);
        match (result, buffer) {
            (len, Some(bid)) if len > 0 && !entry.bundling => {
                let len = len as usize;
                offer(entry, &mut self.bufs, held, (bid, len), cqueue::sock_nonempty(flags), carry, &mut ctx);
                self.core.work_for(entry.conn.take_parsed());
                if self.bundles && len == self.bufs.size() && cqueue::sock_nonempty(flags) {
                    // Input larger than a buffer: a bundle receive costs more per
                    // completion than a plain one, and pays only here. The receive is
                    // re-armed as a bundle once its cancellation completes.
                    entry.bundling = true;
                    if entry.receiving && !entry.cancelling && !entry.closing {
                        entry.cancelling = true;
                        let cancel = opcode::AsyncCancel::new(token::encode(Op::Recv, slot, generation)).build();
                        // SAFETY: a cancellation carries no pointer (`push_ignored` would
                        // borrow all of `self` while `entry` is in use).
                        unsafe { crate::uring::push_ignored(&mut self.ring, cancel) }?;
                    }
                }
            }
            (len, Some(first)) if len > 0 => {
                // A bundle: its buffers, in the order the kernel filled them, each
                // offered in turn.
                let mut bundle = self.bufs.bundle(first, len as usize);
                while let Some(filled) = bundle.next(&self.bufs) {
                    let more = cqueue::sock_nonempty(flags) || !bundle.is_done();
                    offer(entry, &mut self.bufs, held, filled, more, &mut *carry, &mut ctx);
                }
                if !bundle.is_done() {
                    // The rest cannot be found (its ring positions were reused, which
                    // completions in order never allow): the stream is broken, and
                    // those buffers are lost to the ring.
                    entry.conn.handle_read_error();
                }
                self.core.work_for(entry.conn.take_parsed());
            }
            // The end of the input: after what is held, if anything is.
            (0, _) if !entry.held.is_empty() => entry.fin_held = true,
            (0, _) => entry.conn.handle_peer_closed(&mut ctx),
            // Out of receive buffers, or cancelled by us: re-armed below if still wanted.
            (e, _) if e == -libc::ENOBUFS || e == -libc::ECANCELED => {}
            _ => entry.conn.handle_read_error(),
        }
        if entry.closing {
            self.release_if_done(slot, generation);
            return Ok(());
        }
        // The ring was empty, and no buffer has come back since the receive
        // was armed: it waits for one. (One that came back since may have
        // been there for it: armed again at once.)
        if result == -libc::ENOBUFS && !entry.receiving && entry.armed_at == self.bufs.returned() {
            self.wait_for_buffer(slot, generation);
        }
        self.drive(slot, generation)
    }

    /// Offers a connection the input it holds, in order, until it takes it all
    /// or pauses again.
    fn take_held(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        while let Some((bid, start, end)) = self.held.front(&entry.held) {
            if !entry.conn.wants_read() {
                return;
            }
            let (carry, mut ctx) = self.core.parts(slot);
            // SAFETY: `bid` is held by this connection: not recycled, so the
            // kernel does not write it, until it is popped below.
            let data = unsafe { self.bufs.filled(bid, end) };
            let taken = entry.conn.handle_input(&data[start..], carry, false, &mut ctx);
            self.core.work_for(entry.conn.take_parsed());
            if start + taken < end {
                self.held.advance_front(&entry.held, start + taken);
                return;
            }
            if let Some(done) = self.held.pop_front(&mut entry.held) {
                self.bufs.recycle(done);
            }
        }
    }

    pub(super) fn on_send(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
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

    /// The ring's answer to a `SIOCOUTQ`, asked by the tick for a suspect
    /// (`held.rs`) or for a connection whose writer's deadline passed
    /// (`conn::ReaderWatch`); both take it if both asked, and one that did
    /// not ask ignores it. The suspect is cut off when its client took
    /// nothing since the last look, or the op failed (a kernel before 6.7),
    /// if it still holds input and the ring is still under pressure; the
    /// connection closes when its client took nothing since the last look.
    pub(super) fn on_unacknowledged(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let under_pressure = self.held.under_pressure();
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if entry.closing {
            return Ok(());
        }
        let unacknowledged = u32::try_from(result).ok();
        let cut_off = entry.stall.judge_answer(unacknowledged, !entry.held.is_empty(), under_pressure);
        let (_, ctx) = self.core.parts(slot);
        entry.conn.handle_unacknowledged(unacknowledged, &ctx);
        if cut_off {
            // Its client does not read, and what it holds is wanted by others.
            entry.conn.handle_read_error();
        } else if !entry.conn.is_closed() {
            return Ok(());
        }
        self.drive(slot, generation)
    }

    /// Closes the socket through the ring and cancels its ops; the slot is
    /// given back once they have all completed.
    pub(super) fn begin_close(&mut self, slot: u32, generation: u32) -> io::Result<()> {
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
    pub(super) fn on_half_closed(&mut self, slot: u32, generation: u32) -> io::Result<()> {
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

    pub(super) fn release_if_done(&mut self, slot: u32, generation: u32) {
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

/// Offers a connection the input in receive buffer `bid` (its first `len`
/// bytes, just filled by a completion): the buffer goes back to the ring
/// once taken, and is held while the connection pauses (or has input held
/// already: in order, after it), however much it holds (`held.rs`).
/// `more`: the socket has more to read.
/// Inlined: it is the receive path of every request.
#[inline(always)]
fn offer(
    entry: &mut Slot,
    bufs: &mut BufRing,
    held: &mut HeldBuffers,
    (bid, len): (u16, usize),
    more: bool,
    carry: &mut [u8],
    ctx: &mut Context<'_>,
) {
    let taken = if entry.held.is_empty() {
        // SAFETY: `bid` was just handed to us by a completion and is recycled
        // (or held) only after `data` is last used.
        let data = unsafe { bufs.filled(bid, len) };
        entry.conn.handle_input(data, carry, more, ctx)
    } else {
        0
    };
    if taken == len {
        bufs.recycle(bid);
    } else {
        held.push(&mut entry.held, bid, taken, len);
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
