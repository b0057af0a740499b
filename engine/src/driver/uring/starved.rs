//! Connections whose receive found the ring of provided buffers empty
//! (paused connections hold them all): each waits in a queue, armed again
//! as buffers come back, and once its client has closed, what it sent is
//! read without a ring buffer.
//!
//! A receive that waits for a buffer reads nothing, and the kernel reports
//! a FIN or a reset to it only with one: until 2026-12-07 a client that
//! connected, sent nothing, part of a request or a whole one, and closed
//! while the ring was empty kept its descriptor and its place under
//! `--max-conns` for as long as the ring stayed empty, its timers started
//! over (its wait was the worker's), and a request before a half-close
//! waited as long for its answer. Its reset watch (`connection/reset_watch.rs`) sees
//! the close now: a reset ends the connection, and after a FIN (or a
//! hang-up) all the client sent is in the socket, so the connection reads
//! it with a plain ring receive into the worker's one spare buffer
//! ([`SpareBuffer`]), no more at a time than its carry takes, and its state
//! machine takes it as a receive's: part of a request and the FIN close the
//! connection, a whole request is answered first. One connection reads
//! into the spare buffer at a time; the others wait their turn in the queue.

use std::io;

use io_uring::opcode;

use super::UringWorker;
use crate::fallible;
use crate::token::{self, Op};

/// The bytes of the spare buffer: a connection whose input is larger (a
/// body) reads it in several turns.
const SPARE_BYTES: usize = 16 * 1024;

/// The worker's one buffer for receives that take no buffer of the ring
/// (allocated at start), and the connection whose receive writes it.
#[derive(Debug)]
pub(super) struct SpareBuffer {
    bytes: Box<[u8]>,
    /// The connection whose receive is on the way, and the bytes it asked for.
    reader: Option<(u32, u32, usize)>,
}

impl SpareBuffer {
    /// The bytes it reserves.
    pub(super) const BYTES: usize = SPARE_BYTES;

    /// An error when the allocator refuses the memory (see `fallible.rs`).
    pub(super) fn new() -> io::Result<SpareBuffer> {
        Ok(SpareBuffer { bytes: fallible::zeroed(SPARE_BYTES)?, reader: None })
    }
}

/// What a receive into the spare buffer brought its connection.
#[derive(Debug, PartialEq, Eq)]
enum SpareRead {
    /// Input; `more` when it filled all it asked for (the socket may hold more).
    Input { len: usize, more: bool },
    /// The end of its client's input (the FIN), all it sent read.
    End,
    /// Nothing, and no end either: no close after all. It waits for a ring
    /// buffer, as before its client seemed to close, its reset watch done
    /// (armed again, what fired it would fire it at once: the worker would
    /// spin on receives that read nothing). Not seen from outside: once
    /// the watch has seen a FIN or a hang-up, a TCP receive returns input,
    /// its end, or an error, never `EAGAIN`; the ring posts `EAGAIN` only
    /// for a receive asked not to wait (this one waits), and `ECANCELED`
    /// only for a receive cancelled, which only a close does
    /// (`begin_close`: the connection is closing then, and the completion
    /// goes to `release_if_done`) or the ring's end.
    Nothing,
    /// The socket's error (a reset, say): the connection ends.
    Failed,
}

impl SpareRead {
    /// The completion's `result` of a receive that asked for `asked` bytes.
    fn of(result: i32, asked: usize) -> SpareRead {
        match result {
            0 => SpareRead::End,
            len if len > 0 => SpareRead::Input { len: len as usize, more: len as usize == asked },
            e if e == -libc::EAGAIN || e == -libc::ECANCELED => SpareRead::Nothing,
            _ => SpareRead::Failed,
        }
    }
}

impl UringWorker<'_> {
    /// The connection's receive found the ring empty and no buffer has come
    /// back since it was armed: it waits for one, in the queue, and its
    /// client's close is looked for meanwhile (its reset watch is armed by
    /// the drive that follows).
    pub(super) fn wait_for_buffer(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return };
        entry.awaiting_buffer = true;
        let queued = &mut self.buffer_queued[slot as usize];
        if !std::mem::replace(queued, true) {
            self.buffer_waiters.push_back(slot);
        }
    }

    /// A connection waiting for a buffer whose client hung up, and that
    /// wants input: a receive into the spare buffer, if it is free, of no
    /// more than the connection's carry takes (so it takes all it is given);
    /// otherwise its turn comes when the receive in it ends
    /// ([`UringWorker::on_spare_recv`]).
    pub(super) fn recv_into_spare(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if self.spare.reader.is_some() || entry.receiving_spare {
            return Ok(());
        }
        let Some(socket) = &entry.socket else { return Ok(()) };
        let room = entry.conn.input_room(self.core.carry_cap).min(self.spare.bytes.len());
        if room == 0 {
            return Ok(());
        }
        let recv = opcode::Recv::new(socket.fd(), self.spare.bytes.as_mut_ptr(), room as u32).build();
        let recv = recv.flags(socket.flags()).user_data(token::encode(Op::RecvSpare, slot, generation));
        entry.receiving_spare = true;
        self.spare.reader = Some((slot, generation, room));
        self.push(recv)
    }

    /// A receive into the spare buffer completed: its bytes go to the
    /// connection as a receive's would, or its end of input (the FIN); the
    /// connection reads on if it has more, or another takes its turn.
    pub(super) fn on_spare_recv(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let asked = match self.spare.reader {
            Some((reader, reader_generation, asked)) if (reader, reader_generation) == (slot, generation) => {
                self.spare.reader = None;
                asked
            }
            _ => 0,
        };
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            entry.receiving_spare = false;
            if entry.closing {
                self.release_if_done(slot, generation);
            } else {
                if result >= 0 {
                    // Its input is read: its timers are its client's again.
                    entry.starved = false;
                }
                let (carry, mut ctx) = self.core.parts(slot);
                match SpareRead::of(result, asked) {
                    SpareRead::End => entry.conn.handle_peer_closed(&mut ctx),
                    SpareRead::Input { len, more } => {
                        let data = &self.spare.bytes[..len];
                        let taken = entry.conn.handle_input(data, carry, more, &mut ctx);
                        debug_assert_eq!(taken, len, "a read never exceeds what the connection can hold");
                        if taken < len {
                            entry.conn.handle_read_error();
                        }
                        self.core.work_for(entry.conn.take_parsed());
                    }
                    SpareRead::Nothing => entry.hung_up = false,
                    SpareRead::Failed => entry.conn.handle_read_error(),
                }
                self.drive(slot, generation)?;
            }
        }
        self.pass_spare_on()
    }

    /// The spare buffer is free: the first connection in the queue whose
    /// client hung up and that wants input takes it.
    fn pass_spare_on(&mut self) -> io::Result<()> {
        let mut index = 0;
        while self.spare.reader.is_none() && index < self.buffer_waiters.len() {
            let slot = self.buffer_waiters[index];
            index += 1;
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.awaiting_buffer && entry.hung_up && !entry.closing {
                self.drive(slot, generation)?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::SpareRead;

    #[test]
    fn a_spare_receive_that_would_wait_or_was_cancelled_read_nothing_and_saw_no_end() {
        assert_eq!(SpareRead::of(-libc::EAGAIN, 16), SpareRead::Nothing);
        assert_eq!(SpareRead::of(-libc::ECANCELED, 16), SpareRead::Nothing);
    }

    #[test]
    fn a_spare_receive_reports_input_its_end_or_an_error() {
        assert_eq!(SpareRead::of(16, 16), SpareRead::Input { len: 16, more: true }, "all it asked for: maybe more");
        assert_eq!(SpareRead::of(5, 16), SpareRead::Input { len: 5, more: false });
        assert_eq!(SpareRead::of(0, 16), SpareRead::End);
        assert_eq!(SpareRead::of(-libc::ECONNRESET, 16), SpareRead::Failed);
        assert_eq!(SpareRead::of(-libc::ENOTCONN, 16), SpareRead::Failed);
    }
}
