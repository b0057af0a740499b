//! Connections whose receive found the ring of provided buffers empty
//! (paused connections hold them all): each waits in a queue, armed again
//! as buffers come back, and its client's close is seen without a buffer.
//!
//! A receive that waits for a buffer reads nothing, and the kernel reports
//! a FIN or a reset to it only with one: until 2026-12-07 a client that
//! connected, sent nothing (or part of a request) and closed while the
//! ring was empty kept its descriptor and its place under `--max-conns`
//! for as long as the ring stayed empty, its timers started over (its
//! wait was the worker's). Its reset watch (`connection.rs`) sees the
//! close now: a reset ends the connection, and a FIN with nothing of its
//! input left to read (`SIOCINQ`) is taken as its receive would take it.
//! A FIN behind unread input still waits for a buffer: that input is read
//! first (a request, perhaps, from a client that half-closed to wait for
//! its answer).

use std::io;

use super::ring_socket::SocketCount;
use super::UringWorker;
use crate::token::{self, Op};

impl UringWorker<'_> {
    /// The connection's receive found the ring empty and no buffer has come
    /// back since it was armed: it waits for one, in the queue, and its
    /// client's close is looked for meanwhile (its reset watch is armed by
    /// the drive that follows).
    pub(super) fn wait_for_buffer(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        entry.awaiting_buffer = true;
        let queued = &mut self.buffer_queued[slot as usize];
        if !std::mem::replace(queued, true) {
            self.buffer_waiters.push_back(slot);
        }
        self.look_at_hang_up(slot, generation)
    }

    /// A connection waiting for a buffer whose client hung up: asks how much
    /// of its input is left to read, now (a plain descriptor) or through
    /// the ring (a direct one: [`UringWorker::on_unread`]).
    pub(super) fn look_at_hang_up(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if !entry.hung_up || !entry.awaiting_buffer || entry.closing {
            return Ok(());
        }
        let Some(socket) = &entry.socket else { return Ok(()) };
        match socket.ask_unread(token::encode(Op::Unread, slot, generation)) {
            SocketCount::Now(unread) => {
                self.take_hang_up(slot, generation, unread);
                Ok(())
            }
            SocketCount::Ask(ask) => self.push(ask),
        }
    }

    /// The ring's answer to [`UringWorker::look_at_hang_up`] (a kernel
    /// before 6.7 fails the op: the connection waits for a buffer, as before).
    pub(super) fn on_unread(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        if self.take_hang_up(slot, generation, u32::try_from(result).ok()) {
            return self.drive(slot, generation);
        }
        Ok(())
    }

    /// Nothing of the input of a connection that waits for a buffer is left
    /// to read, and its client hung up: the FIN its receive would report
    /// once a buffer came back is taken now (the connection closes, or
    /// first sends what it owes), and its timers run again. True if taken.
    fn take_hang_up(&mut self, slot: u32, generation: u32, unread: Option<u32>) -> bool {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return false };
        if unread != Some(0) || !entry.awaiting_buffer || entry.closing || entry.conn.is_closed() {
            return false;
        }
        entry.starved = false;
        if entry.held.is_empty() {
            let (_, mut ctx) = self.core.parts(slot);
            entry.conn.handle_peer_closed(&mut ctx);
        } else {
            // Input its receive posted before it found the ring empty, held
            // while paused: the FIN comes after it, as a receive's would.
            entry.fin_held = true;
        }
        true
    }

    /// Receives that found the ring empty, armed again in the order they
    /// found it so: as many as buffers came back since the last look, or
    /// one when `at_least_one` (the tick's, in case a buffer came back that
    /// no receive armed since has taken).
    pub(super) fn wake_buffer_waiters(&mut self, at_least_one: bool) -> io::Result<()> {
        let returned = self.bufs.returned();
        let mut budget = returned.wrapping_sub(self.waiters_woken_at).max(u64::from(at_least_one));
        self.waiters_woken_at = returned;
        while budget > 0 {
            let Some(slot) = self.buffer_waiters.pop_front() else { break };
            self.buffer_queued[slot as usize] = false;
            // The slot's connection now: the one that queued it may have
            // ended, and another come to the slot and found the ring empty too.
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if !std::mem::take(&mut entry.awaiting_buffer) {
                continue;
            }
            self.drive(slot, generation)?;
            if self.conns.get_mut(slot, generation).is_some_and(|entry| entry.receiving) {
                budget -= 1;
            }
        }
        Ok(())
    }
}
