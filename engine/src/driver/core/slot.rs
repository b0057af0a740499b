//! A connection's slot in what both drivers keep: its carry and output
//! buffers and the context its state machine's handlers take, a connection
//! opened in it (counted, its client's address read when asked for), and
//! its buffers' pages given back when it is freed.

use std::io;
use std::os::fd::BorrowedFd;

use super::sized_by::slots_text;
use super::Core;
use crate::answer::{Answering, Dynamic};
use crate::conn::{Connection, Context, OutBuf};
use crate::driver::Origin;
use crate::refused::reservation_refused as cannot_reserve;

impl Core<'_> {
    /// The error for `what`, `each` bytes for each connection the worker can
    /// hold, refused with `e`: it names the limit that sized it.
    pub(in crate::driver) fn refused_per_connection(&self, e: io::Error, what: &str, each: usize) -> io::Error {
        cannot_reserve(e, what, format_args!("{} x {each}", slots_text(self.config.max_conns, self.capacity())))
    }

    /// Slot `slot`'s carry buffer and the context its connection's handlers take.
    pub(in crate::driver) fn parts(&mut self, slot: u32) -> (&mut [u8], Context<'_>) {
        let base = slot as usize * self.carry_cap;
        let carry = &mut self.carry[base..base + self.carry_cap];
        let out_base = slot as usize * self.out_cap;
        let answering = if self.fixed {
            Answering::Fixed
        } else {
            Answering::Dynamic(Dynamic {
                handler: &mut *self.handler,
                scratch: &mut self.scratch,
                bodies: &mut self.bodies,
                peer: self.peers.get(slot as usize).copied().flatten(),
            })
        };
        assert!(out_base + self.out_cap <= self.out.len(), "slot {slot} is past the output buffers");
        // SAFETY: the slot's output buffer, inside the mapping (checked),
        // which lives as long as `self`, borrowed for the context's life; no
        // reference into it is made elsewhere: a send in flight from it reads
        // through slices an earlier context's `OutBuf` gave.
        let out = unsafe { OutBuf::from_raw(self.out.as_mut_ptr().add(out_base), self.out_cap) };
        let context = Context {
            now: self.now,
            limits: self.limits,
            timeouts: self.timeouts,
            responses: &mut self.responses,
            draining: self.draining,
            answering,
            out,
            health_path: self.config.health_path.as_deref().map(str::as_bytes),
            healthy: !self.draining && !self.counters.is_lame_duck(),
        };
        (carry, context)
    }

    /// Frees slot `slot`'s connection `conn` (what it holds goes back, see
    /// [`Connection::release`]), and the pages of the slot's buffers that a
    /// large exchange touched (see
    /// [`LazyBytes::release_touched`](crate::lazy_bytes::LazyBytes::release_touched):
    /// none, and no system call, for the small ones). The drivers call it only once no
    /// send from the slot's output buffer is in flight.
    pub(in crate::driver) fn release_slot(&mut self, slot: u32, conn: &mut Connection) {
        let (_, mut ctx) = self.parts(slot);
        conn.release(&mut ctx);
        let (carry, out) = conn.touched();
        let base = slot as usize * self.carry_cap;
        self.carry.release_touched(base..base + self.carry_cap, carry);
        let base = slot as usize * self.out_cap;
        self.out.release_touched(base..base + self.out_cap, out);
    }

    /// Whether the handler asked for its clients' addresses: the io_uring
    /// driver then accepts plain descriptors, which `getpeername` can name.
    pub(in crate::driver) fn wants_peers(&self) -> bool {
        self.wants_peers
    }

    /// Readies `conn` in slot `slot` for a connection just taken on
    /// `socket` (`None`: a direct descriptor, which no system call names),
    /// and counts it; one taken as the drain began (its accept raced the
    /// cancel) is drained like the others, not kept to the drain's deadline.
    /// When the handler asked for it, the client's address is read here,
    /// once for the connection's life.
    pub(in crate::driver) fn open_connection(
        &mut self,
        conn: &mut Connection,
        slot: u32,
        origin: Origin,
        socket: Option<BorrowedFd<'_>>,
    ) {
        if self.wants_peers {
            if let Some(peer) = self.peers.get_mut(slot as usize) {
                *peer = socket.and_then(|socket| crate::sys::socket::peer_addr(socket).ok());
            }
        }
        conn.open(self.now, &self.timeouts);
        if self.draining {
            let (_, ctx) = self.parts(slot);
            conn.handle_drain(&ctx);
        }
        self.counts.accepted += 1;
        // At once, not at the end of the turn: whoever steers by what waits
        // unaccepted sees it leave the queue when it does. One the master
        // handed over was counted by the master, off the listener it took
        // it from.
        if let (Some(tally), Origin::Accepted) = (&self.sources.accept_tally, origin) {
            tally.add(1);
        }
    }
}
