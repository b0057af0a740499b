//! The tick: the `Date` moved on, every connection's deadline judged (not
//! after the loop stood still), a holder whose client does not read cut off
//! (`held.rs`), the ring's answers to what it asked of a client's reading,
//! and the listener's queue swept and made room for.

use std::io;
use std::time::SystemTime;

use io_uring::opcode;

use super::held::Suspicion;
use super::ring_socket::{RingSocket, SocketCount};
use super::UringWorker;
use crate::token::{self, Op};

impl UringWorker<'_> {
    pub(super) fn arm_tick(&mut self) -> io::Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick).build();
        self.push(timeout.user_data(token::encode(Op::Tick, 0, 0)))
    }

    pub(super) fn on_tick(&mut self) -> io::Result<()> {
        self.core.responses.refresh(SystemTime::now());
        let now = self.core.now;
        let due = self.core.deadlines_due();
        let under_pressure = self.held.under_pressure();
        self.ticks += 1;
        for slot in 0..self.conns.high_water() {
            let Some(generation) = self.conns.generation(slot) else { continue };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            if entry.closing {
                continue;
            }
            let suspicion = entry.stall.on_tick(!entry.held.is_empty(), under_pressure);
            let cut_off = match suspicion {
                Suspicion::None => false,
                Suspicion::Ask => match unacknowledged(&entry.socket, slot, generation) {
                    SocketCount::Now(count) => entry.stall.judge(count),
                    SocketCount::Ask(ask) => {
                        // Its answer comes to `on_unacknowledged`.
                        entry.stall.asked();
                        self.push(ask)?;
                        false
                    }
                },
            };
            let Some(entry) = self.conns.get_mut(slot, generation) else { continue };
            // Starved, and its receive armed again before the last tick and
            // not completed since: it waits for input (one armed with input
            // in the socket completes at once, with it or with ENOBUFS). Its
            // ENOBUFS came with nothing to read: a receive armed on an empty
            // socket takes its buffer before it reads. Its client is silent
            // and its timers run again (until 2026-12-07 it stayed starved
            // until input came, every deadline started over).
            let rested =
                entry.starved && entry.receiving && !entry.cancelling && self.ticks.wrapping_sub(entry.armed_tick) > 1;
            if rested {
                entry.starved = false;
            }
            if cut_off {
                // Its client does not read, and what it holds is wanted by others.
                entry.conn.handle_read_error();
            } else if entry.conn.deadline() > now || !due {
                if rested {
                    // Idle, it may be reclaimed again: listed (`drive`), as
                    // a reclaim that passed it over while starved unlisted it.
                    self.drive(slot, generation)?;
                }
                continue;
            } else {
                let (_, mut ctx) = self.core.parts(slot);
                if entry.starved && entry.conn.postpone_for_unread_input(&ctx, entry.awaiting_buffer) {
                    // No buffer to read its input with: not its client's delay.
                    continue;
                }
                entry.conn.handle_timeout(&mut ctx);
                // A body's 408 is a request answered, as a 400 is.
                self.core.work_for(entry.conn.take_parsed());
                self.look_at_reader(slot, generation)?;
            }
            self.drive(slot, generation)?;
        }
        // A buffer may have come back that no receive armed since took.
        self.wake_buffer_waiters(true)?;
        self.core.recheck_fd_limit();
        self.accepts_starved = false;
        self.sweep_listener()?;
        self.reclaim_for_queue()?;
        self.arm_accepts()?;
        self.arm_tick()
    }

    /// Asks the kernel how many bytes the client has not acknowledged, when
    /// the connection wants to know whether it reads (its writer's deadline
    /// passed with input come meanwhile: `conn::reader_watch::ReaderWatch`): a plain
    /// descriptor with the ioctl, a direct one through the ring
    /// ([`UringWorker::on_unacknowledged`]; a kernel before 6.7 fails the op,
    /// and the connection is judged as before it asked).
    pub(super) fn look_at_reader(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(slot, generation) else { return Ok(()) };
        if !entry.conn.take_reader_look() {
            return Ok(());
        }
        match unacknowledged(&entry.socket, slot, generation) {
            SocketCount::Now(count) => {
                let (_, ctx) = self.core.parts(slot);
                entry.conn.handle_unacknowledged(count, &ctx);
                Ok(())
            }
            SocketCount::Ask(ask) => self.push(ask),
        }
    }

    /// The ring's answer to a `SIOCOUTQ`, asked by the tick for a suspect
    /// (`held.rs`) or for a connection whose writer's deadline passed
    /// (`conn::reader_watch::ReaderWatch`); both take it if both asked, and
    /// one that did not ask ignores it. The suspect is cut off when its
    /// client took nothing since the last look, or the op failed (a kernel
    /// before 6.7), if it still holds input and the ring is still under
    /// pressure; the connection closes when its client took nothing since
    /// the last look.
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
}

/// The count of unacknowledged bytes of a connection's socket, or the ring
/// op that asks for it, answered to `on_unacknowledged` (no socket: `None`).
pub(super) fn unacknowledged(socket: &Option<RingSocket>, slot: u32, generation: u32) -> SocketCount {
    match socket {
        Some(socket) => socket.ask_unacknowledged(token::encode(Op::Unacknowledged, slot, generation)),
        None => SocketCount::Now(None),
    }
}
