//! A connection taken into a slot, accepted or handed over: made
//! non-blocking and watched, a full worker's longest-idle connection closed
//! for it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::{EpollWorker, Slot};
use crate::driver::Origin;
use crate::sys::epoll;
use crate::sys::socket;
use crate::token::{self, Op};

impl EpollWorker<'_> {
    /// Takes a connection into the slab and starts watching it, closing the
    /// longest-idle connection first when every slot is taken; false (and
    /// `fd` closed) when every slot is taken by a busy one, or when it cannot be watched
    /// (the kernel out of memory for the watch, the user's epoll watch
    /// limit): declined as a full worker's would be, so the master routes a
    /// handed one elsewhere, while this worker's other connections go on.
    pub(super) fn adopt(&mut self, fd: OwnedFd, origin: Origin) -> io::Result<bool> {
        if self.conns.vacant() == 0 {
            // Full: the longest-idle keep-alive connection makes room, if any.
            self.reclaim_oldest();
        }
        let Some((slot, generation)) = self.conns.insert() else { return Ok(false) };
        let events = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::EDGE;
        let watched = socket::set_nonblocking(fd.as_fd())
            .and_then(|()| self.epoll.add(fd.as_fd(), events, token::encode(Op::Recv, slot, generation)));
        if watched.is_err() {
            self.conns.remove(slot);
            return Ok(false);
        }
        if let Some(entry) = self.conns.get_mut(slot, generation) {
            // Readable until a read says otherwise: input may have come before the watch.
            *entry = Slot { fd: Some(fd), readable: true, origin, ..Slot::default() };
            let socket = entry.fd.as_ref().map(|fd| fd.as_fd());
            self.core.open_connection(&mut entry.conn, slot, origin, socket);
        }
        match origin {
            // Served once the master knows it is ours: `handed::take_message`.
            Origin::Handed => self.core.handed_now.push((slot, generation)),
            Origin::Accepted => self.drive(slot, generation)?,
        }
        Ok(true)
    }
}
