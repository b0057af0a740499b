//! A message from the master, once read into the inbox, taken the same way
//! by both drivers: the batch's connections adopted, the fd limit noted,
//! the ack published before any of them is read, then served; `Drain`
//! last. The drivers lend the steps that touch their sockets ([`Driver`]).

use std::io;
use std::os::fd::OwnedFd;

use super::adopt_batch;
use super::core::Core;
use crate::channel::Tag;

/// What a driver lends [`take_message`].
pub(super) trait Driver<'a> {
    fn core(&mut self) -> &mut Core<'a>;
    /// The connections open now (what the master finds counted live with the ack).
    fn live(&self) -> usize;
    /// Takes a handed-over connection into a slot, listed in
    /// [`Core::handed_now`] and not served until its ack is out; false (and
    /// `fd` closed) when full.
    fn adopt_handed(&mut self, fd: OwnedFd) -> io::Result<bool>;
    /// Closes the longest-idle connection; false when there is none.
    fn reclaim_oldest(&mut self) -> io::Result<bool>;
    /// Does what a connection asks after an event.
    fn drive(&mut self, slot: u32, generation: u32) -> io::Result<()>;
    fn start_drain(&mut self) -> io::Result<()>;

    /// The master is gone (a wake-up for it could not be sent): finish up and exit.
    fn master_gone(&mut self) -> io::Result<()> {
        self.core().channel_open = false;
        self.start_drain()
    }
}

/// Takes the message of `len` bytes just received into the inbox. False
/// when the master turned out to be gone: the worker is draining, and its
/// channel is not to be read again.
pub(super) fn take_message<'a>(worker: &mut impl Driver<'a>, len: usize) -> io::Result<bool> {
    let mut batch = worker.core().take_batch(len);
    let (adopted, declined) = adopt_batch(&mut batch, |fd| worker.adopt_handed(fd))?;
    worker.core().counts.rejected += declined as u64;
    if batch.short() > 0 {
        let live = worker.live();
        worker.core().batch_hit_fd_limit(live);
    }
    for _ in 0..batch.short() {
        if !worker.reclaim_oldest()? {
            break;
        }
    }
    // The ack goes out before a byte of these connections is read, not at
    // the turn's end (io_uring submits a full queue's receives mid-turn): a
    // worker that dies after reading a request must take its connection
    // along, not leave it to the master, which would hand it on without the
    // request (or after part of an answer). The master sends one batch at a
    // time, so this is the turn's only ack as a rule, and publishing it now
    // costs nothing more.
    let live = worker.live();
    let core = worker.core();
    let acked = core.acknowledge(&batch.received, adopted, live) && core.flush_acks(live);
    for i in 0..worker.core().handed_now.len() {
        let (slot, generation) = worker.core().handed_now[i];
        worker.drive(slot, generation)?;
    }
    worker.core().handed_now.clear();
    if !acked {
        worker.master_gone()?;
        return Ok(false);
    }
    if batch.received.tag == Some(Tag::Drain) {
        worker.start_drain()?;
    }
    Ok(true)
}
