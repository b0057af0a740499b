//! The worker: one event loop on io_uring (`uring/`) or epoll (`epoll/`)
//! around the same connection state machine, and what both loops share
//! (`core/`): the preformatted replies, the carry buffers, the counters,
//! draining, and the master's channel (batches in, acks out).
//!
//! Connections come from a listener (`shared` mode) and from the master's
//! channel (fds over `SCM_RIGHTS`); both end in the driver's `adopt`, so a
//! handed-over connection is served exactly like an accepted one.

mod core;
mod epoll;
mod handed;
mod idle;
mod late_closes;
mod uring;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use self::core::{Batch, Core};
use crate::backend::Backend;
use crate::config::EngineConfig;
use crate::handler::Handler;
use crate::stats::WorkerCounters;
use crate::tally::AcceptTally;

/// Smallest carry buffer per connection.
const CARRY_MIN: usize = 16 * 1024;

/// How often a worker checks deadlines and moves the `Date` on.
const TICK: Duration = Duration::from_millis(100);

/// Where a worker's connections come from, and what tells it to stop.
#[derive(Debug, Default)]
pub struct Sources {
    /// A listening socket to accept on (`shared` or `reuseport` mode, or a lone worker).
    pub listener: Option<OwnedFd>,
    /// The listener is this worker's own (`reuseport`): when it drains it
    /// accepts what is queued on it, then closes it, instead of leaving the
    /// queue to others (no other process accepts there).
    pub own_listener: bool,
    /// The master's end of the channel sends connections and `Drain` here (`rr` mode);
    /// its end of stream means the master is gone, and the worker drains.
    pub channel: Option<OwnedFd>,
    /// Readable means "drain and exit" (a signalfd, an eventfd).
    pub shutdown: Option<OwnedFd>,
    /// Where connections accepted on the own listener are added up for
    /// whoever steers by what waits unaccepted (`reuseport --steer load`).
    pub accept_tally: Option<AcceptTally>,
}

/// Runs one worker until it has drained, on the backend `config` names,
/// answering with `handler`; `counters` is its slot in the stats block.
///
/// Call it on the thread that will run the loop: an io_uring ring is
/// created here and is single-issuer.
pub fn run(
    config: &EngineConfig,
    sources: Sources,
    counters: &WorkerCounters,
    handler: &mut dyn Handler,
) -> io::Result<()> {
    // The handler's code may talk to the master while this worker runs.
    let _attached = match &sources.channel {
        Some(channel) => Some(crate::messages::attach(channel.as_fd())?),
        None => None,
    };
    let core = Core::new(config, sources, counters, handler)?;
    match config.backend {
        Backend::Uring => uring::UringWorker::new(core)?.serve(),
        Backend::Epoll => epoll::EpollWorker::new(core)?.serve(),
    }
}

/// Where a connection came from, which says how the worker closes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Origin {
    /// Accepted here: the worker's close is the socket's last.
    #[default]
    Accepted,
    /// Handed over by the master, which keeps its copy until it has read the
    /// ack. Closing ours alone then sends nothing: the client would get our
    /// FIN only when the master closes its copy (a batch later), and the TCP
    /// close would run in the master. The worker sends its FIN itself
    /// (`shutdown(SHUT_WR)`) before it closes, and closes a moment later
    /// (`late_closes.rs`).
    Handed,
}

/// Adopts a batch's connections in order with `adopt` (false: full), so the
/// adopted ones are a prefix of the batch: once one is declined the rest are
/// too. Declining closes only our copy; the master's keeps the connection
/// open and the master hands it elsewhere. Returns (adopted, declined).
fn adopt_batch(batch: &mut Batch, mut adopt: impl FnMut(OwnedFd) -> io::Result<bool>) -> io::Result<(usize, usize)> {
    let mut adopted = 0;
    let mut declined = 0;
    for fd in batch.fds.iter_mut().filter_map(Option::take) {
        if declined > 0 || !adopt(fd)? {
            declined += 1;
            continue;
        }
        adopted += 1;
    }
    Ok((adopted, declined))
}

/// The next connection queued on a listener of the worker's own, taken
/// without waiting, as a draining `reuseport` worker empties its queue before
/// it lets go of its copy of the listener; `None` when the queue is empty (or
/// the worker is out of fds). What arrives after the last accept waits on the
/// listener, which the master keeps: the slot's next process takes it (a
/// reload), or the master hands it on (a retired slot's listener, set aside)
/// or answers it `503` (a stop) before it shuts the listener.
fn next_queued(listener: &OwnedFd) -> Option<OwnedFd> {
    if crate::sys::socket::set_nonblocking(listener.as_fd()).is_err() {
        return None;
    }
    loop {
        match crate::sys::socket::accept(listener.as_fd()) {
            Ok(queued) => {
                // A stalled retiree that runs again as the master stops the
                // handshakes on its listener may take one that completed as
                // the filter went on, and has it too: it would hear nothing.
                if let Some(fd) = &queued {
                    crate::sys::socket::detach_filter(fd.as_fd());
                }
                return queued;
            }
            // Out of descriptors, or the listener no longer listens (EINVAL):
            // a retry would fail the same way.
            Err(e) if e.raw_os_error().is_some_and(|n| crate::sys::out_of_resources(n) || n == libc::EINVAL) => {
                return None
            }
            // The connection died in the queue (a network error passed on,
            // as accept(2) does): try the next one.
            Err(_) => {}
        }
    }
}
