//! A connection's input on the ring: a receive's completion (one buffer
//! or a bundle, the end of the input, the ring found empty), its input
//! offered to the state machine or held while it pauses, and the held
//! input taken once it reads again.

use std::io;

use io_uring::{cqueue, opcode};

use super::super::held::HeldBuffers;
use super::super::UringWorker;
use super::Slot;
use crate::bufring::BufRing;
use crate::conn::Context;
use crate::token::{self, Op};

impl UringWorker<'_> {
    pub(in crate::driver::uring) fn on_recv(
        &mut self,
        slot: u32,
        generation: u32,
        result: i32,
        flags: u32,
    ) -> io::Result<()> {
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
    pub(super) fn take_held(&mut self, slot: u32, generation: u32) {
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
