//! The epoll worker built at start: its epoll set with the tick, the
//! master's channel and the shutdown fd in it, and every list it keeps
//! sized for the connections it can hold.

use std::io;
use std::os::fd::AsFd;

use super::{EpollWorker, ReadQueue, Slot};
use crate::driver::core::Core;
use crate::driver::TICK;
use crate::refused;
use crate::slab::Slab;
use crate::sys::epoll::{self, Epoll};
use crate::sys::socket;
use crate::sys::timerfd::Ticker;
use crate::token::{self, Op};

/// Bytes one `recv` reads.
const RECV_BUFFER: usize = 64 * 1024;
/// Events one wait returns at most.
const EVENTS: usize = 1024;

impl<'a> EpollWorker<'a> {
    pub(in crate::driver) fn new(mut core: Core<'a>) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        let ticker = Ticker::every(TICK)?;
        epoll.add(ticker.as_fd(), epoll::IN, token::encode(Op::Tick, 0, 0))?;
        if let Some(channel) = &core.sources.channel {
            epoll.add(channel.as_fd(), epoll::IN, token::encode(Op::Channel, 0, 0))?;
        }
        if let Some(shutdown) = &core.sources.shutdown {
            epoll.add(shutdown.as_fd(), epoll::IN, token::encode(Op::Shutdown, 0, 0))?;
        }
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes (and the master): every accept on it
            // must expect EAGAIN, which io_uring accepts handle as well.
            socket::set_nonblocking(listener.as_fd())?;
        }
        core.hold_plain_descriptors();
        // As many slots as it can hold: full when the master sees it full.
        let slots = core.capacity();
        let conns = Slab::new(slots, Slot::default)
            .map_err(|e| core.refused_per_connection(e, "connection slots", Slab::<Slot>::BYTES_PER_SLOT))?;
        let more_to_read = ReadQueue::new(slots)
            .map_err(|e| core.refused_per_connection(e, "read queue", ReadQueue::BYTES_PER_SLOT))?;
        // Its last reservation: room for the events and the receive buffer
        // below, allocated without one (a refusal aborts).
        refused::keep_headroom("read queue")?;
        Ok(EpollWorker {
            epoll,
            ticker,
            conns,
            core,
            events: Vec::with_capacity(EVENTS),
            recv_buffer: vec![0u8; RECV_BUFFER].into_boxed_slice(),
            more_to_read,
            listening: false,
            accepts_starved: false,
            accepted_since_step_back: 0,
        })
    }
}
