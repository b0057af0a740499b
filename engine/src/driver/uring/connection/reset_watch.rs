//! The poll that sees a reset a connection's receive may miss: armed
//! once input has come that no send follows, or once its receive waits for
//! a buffer, and what its completion says.

use std::io;

use io_uring::opcode;

use super::super::UringWorker;
use crate::token::{self, Op};

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
pub(in crate::driver::uring) enum ResetWatch {
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
    /// Arms the connection's [`ResetWatch`] once input is in that no send
    /// follows (part of a request, empty lines before one, input while it
    /// lingers: [`crate::conn::Connection::needs_reset_watch`]), or once its
    /// receive waits for a buffer: connections that take their requests
    /// whole (most) never need it while the ring has room.
    pub(super) fn watch_for_reset(&mut self, slot: u32, generation: u32) -> io::Result<()> {
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
    pub(in crate::driver::uring) fn on_reset_watch(
        &mut self,
        slot: u32,
        generation: u32,
        result: i32,
    ) -> io::Result<()> {
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
}
