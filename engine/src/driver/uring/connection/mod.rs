//! One connection on the io_uring driver: the ops its state machine asks
//! for (receive, send, half-close, close), what their completions mean, the
//! input it holds while paused, and the end of its slot once every op is done.
//!
//! This file: a connection's slot and the ops it has outstanding;
//! `drive.rs`: what its state machine asks for, done on the ring (sends
//! and their completions); `recv.rs`: its input received, offered, held;
//! `reset_watch.rs`: the poll that sees a reset its receive may miss;
//! `close.rs`: its close and the slot given back.

mod close;
mod drive;
mod recv;
mod reset_watch;

use super::held::{Held, Stall};
use super::ring_socket::RingSocket;
use crate::conn::Connection;
use crate::driver::Origin;

use self::reset_watch::ResetWatch;

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
