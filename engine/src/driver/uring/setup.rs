//! The io_uring worker built at start: its ring, its provided buffers,
//! its table of direct descriptors (or plain descriptors, for a handler that
//! asks for its clients' addresses), and every list it keeps sized for the
//! connections it can hold.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;

use io_uring::types::Timespec;

use super::connection::Slot;
use super::held::HeldBuffers;
use super::ring_socket;
use super::starved::SpareBuffer;
use super::UringWorker;
use crate::bufring::BufRing;
use crate::driver::core::Core;
use crate::driver::TICK;
use crate::fallible;
use crate::refused::{self, reservation_refused as cannot_reserve};
use crate::slab::Slab;
use crate::sys::socket;
use crate::uring::{self, Completion};

impl<'a> UringWorker<'a> {
    pub(in crate::driver) fn new(mut core: Core<'a>) -> io::Result<Self> {
        if let Some(listener) = &core.sources.listener {
            // Shared with other processes: the tick's sweep must never block
            // on it (io_uring's own accepts handle EAGAIN).
            socket::set_nonblocking(listener.as_fd())?;
        }
        let entries = core.config.ring_entries;
        let ring = uring::build_ring(entries).map_err(|e| {
            let completions = entries.saturating_mul(uring::COMPLETIONS_PER_ENTRY);
            let sized_by = format_args!(
                "{entries} submission entries x {} + {completions} completion entries x {}",
                uring::SUBMISSION_BYTES,
                uring::COMPLETION_BYTES
            );
            refused::mapping_refused(e, uring::ring_bytes(entries), "io_uring ring", sized_by)
        });
        let ring = ring.map_err(|e| short_of_memory(e, "its io_uring ring"))?;
        let bufs = BufRing::register(&ring.submitter(), core.config.recv_buffers, core.config.recv_buffer_size)
            .map_err(|e| short_of_memory(e, "its ring of provided buffers"))?;
        let completions_cap = ring.params().cq_entries() as usize;
        // A handler that asks for its clients' addresses gets plain
        // descriptors from the ring's accepts too, each named by one
        // `getpeername` as it is adopted: a direct descriptor has no number
        // a system call takes, Linux has no ring op that names a socket's
        // peer (6.18), and an accept's own address buffer is no help here
        // (the accepts share one user_data, which their cancel relies on,
        // and a multishot accept writes every address into one buffer).
        let table = match core.sources.listener {
            Some(_) if !core.wants_peers() => ring_socket::register_table(&ring.submitter(), core.slots()),
            _ => None,
        };
        // An accept into a full table would take the connection off the queue
        // and close it unanswered: the worker holds no more than the table.
        match table {
            Some(size) => core.limit_capacity(size as usize),
            None => core.hold_plain_descriptors(),
        }
        let accepts_direct = table.is_some();
        let outstanding = core.config.accepts_outstanding as usize;
        let bundles = uring::recv_bundles(&ring);
        let bundle_cap = uring::recv_bundle_cap(core.config.recv_buffer_size).filter(|_| bundles);
        let recv_buffers = core.config.recv_buffers;
        let held = HeldBuffers::new(recv_buffers).map_err(|e| {
            cannot_reserve(e, "held-input chains", format_args!("{recv_buffers} x {}", HeldBuffers::BYTES_PER_BUFFER))
        })?;
        // As many slots as it can hold: full when the master sees it full.
        let conns = Slab::new(core.capacity(), Slot::default)
            .map_err(|e| core.refused_per_connection(e, "connection slots", Slab::<Slot>::BYTES_PER_SLOT))?;
        let slotless = fallible::with_capacity(outstanding)
            .map_err(|e| cannot_reserve(e, "slotless accepts", format_args!("{outstanding} x {}", size_of::<u32>())))?;
        let slots = core.capacity();
        let buffer_waiters = fallible::with_capacity(slots)
            .map(VecDeque::from)
            .map_err(|e| cannot_reserve(e, "receive buffer waiters", format_args!("{slots} x {}", size_of::<u32>())))?;
        let buffer_queued = fallible::zeroed(slots)
            .map_err(|e| cannot_reserve(e, "receive buffer waiters", format_args!("{slots} x 1")))?;
        let spare = SpareBuffer::new()
            .map_err(|e| cannot_reserve(e, "spare receive buffer", format_args!("{}", SpareBuffer::BYTES)))?;
        let completions = fallible::with_capacity(completions_cap).map_err(|e| {
            cannot_reserve(e, "completion batch", format_args!("{completions_cap} x {}", size_of::<Completion>()))
        })?;
        // Its last reservation: room for what is allocated without one
        // from here on (its first turns), which aborts if refused.
        refused::keep_headroom("completion batch")?;
        Ok(UringWorker {
            ring,
            bufs,
            spare,
            held,
            conns,
            core,
            tick: Box::new(Timespec::from(TICK)),
            accepts_armed: 0,
            accepts_cancelling: 0,
            accepts_starved: false,
            accepted_since_tick: false,
            queue_at_tick: false,
            accepts_direct,
            slotless,
            bundles,
            bundle_cap,
            completions,
            buffer_waiters,
            buffer_queued,
            waiters_woken_at: 0,
            ring_found_empty_at: None,
            ticks: 0,
        })
    }
}

/// `e` as it is, unless it is an `ENOMEM` that is not a refused reservation
/// (`refused.rs`): then with the memory that lacked for `what` named (a
/// user's locked memory, where rings count against it; a cgroup's), which a
/// bare `Cannot allocate memory` left the operator to guess. Still not a
/// refused reservation: another process may let that memory go, and a
/// restart find it.
fn short_of_memory(e: io::Error, what: &str) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    io::Error::new(e.kind(), format!("{what}: {e}: {}", crate::backend::short_of_memory(None)))
}
