//! The sends and receives a client's buffers are lent to, and what a
//! send's result means; a client done with is freed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::{ClientId, Clients, Ops};
use crate::reactor::Lent;

impl Clients {
    /// A send completed with `result` (bytes sent or `-errno`).
    pub fn sent(&mut self, id: ClientId, result: i32, now: Instant) {
        let Some(client) = self.client(id) else { return };
        client.in_flight = false;
        if result < 0 {
            client.closing = true;
            client.sending.clear();
            client.sent = 0;
            client.queued.clear();
            // Commands that waited for it to take its replies: it never will.
            client.deferred.clear();
            return;
        }
        client.sent += result as usize;
        if client.sent >= client.sending.len() {
            client.sending.clear();
            client.sent = 0;
        }
        client.output_since = Some(now);
        if !client.has_output() {
            client.output_since = None;
            client.active_at = now;
        }
    }

    /// The send and receive to start next for a client. A client that is
    /// done (closing, nothing in flight, nothing left to send) is freed, its
    /// connection returned to be closed.
    pub fn next_ops(&mut self, id: ClientId) -> (Ops, Option<OwnedFd>) {
        let mut ops = Ops::default();
        let Some(client) = self.client(id) else { return (ops, None) };
        let fd = client.fd.as_raw_fd();
        if !client.in_flight {
            if client.sending.is_empty() && !client.queued.is_empty() {
                std::mem::swap(&mut client.sending, &mut client.queued);
            }
            if client.sent < client.sending.len() {
                let rest = &client.sending[client.sent..];
                client.in_flight = true;
                // SAFETY: `sending` is neither changed nor freed while `in_flight`,
                // that is until `sent` (a client is freed only with nothing in flight).
                ops.send = Some(unsafe { Lent::send(fd, rest.as_ptr(), rest.len()) });
            }
        }
        // Nothing more is read while commands wait for an owed reply.
        if !client.receiving && !client.closing && client.deferred.is_empty() {
            client.receiving = true;
            let room = &mut client.input[client.len..];
            // SAFETY: the boxed line buffer is not touched while `receiving`,
            // that is until `received` (a client is freed only with nothing in flight).
            ops.recv = Some(unsafe { Lent::recv(fd, room.as_mut_ptr(), room.len()) });
        }
        // A client that ended its input still reads: it gets a reply it is owed.
        let waiting = client.owed.is_some() || !client.deferred.is_empty();
        if client.closing && !client.receiving && !client.has_output() && !waiting {
            let done = self.slots.take(id.index);
            return (ops, done.map(|c| c.fd));
        }
        (ops, None)
    }
}
