//! A client's replies: queued, owed (their outcome comes later) with the
//! replies after them held, and the commands that wait meanwhile.

use std::time::Instant;

use super::{ClientId, Clients};

impl Clients {
    /// Queues a reply line for a client (behind a reply it is owed, if any).
    pub fn reply(&mut self, id: ClientId, text: &str, now: Instant) {
        let Some(client) = self.client(id).filter(|c| !c.aborted) else { return };
        let out = client.owed.as_mut().unwrap_or(&mut client.queued);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        if client.owed.is_none() {
            client.output_since.get_or_insert(now);
        }
    }

    /// The reply to the command just received comes later: replies to the
    /// next commands wait behind it until [`Clients::release`].
    pub fn hold(&mut self, id: ClientId) {
        if let Some(client) = self.client(id).filter(|c| !c.aborted) {
            client.owed.get_or_insert_with(Vec::new);
        }
    }

    /// Whether a command line that comes now waits ([`Clients::defer`]):
    /// the client is owed a reply, which comes first, or has not taken
    /// [`MAX_BACKLOG`](super::MAX_BACKLOG) bytes of replies.
    pub fn must_wait(&mut self, id: ClientId) -> bool {
        self.client(id).is_some_and(|c| !c.aborted && c.must_wait())
    }

    /// Keeps a command line that came while the client must wait, to run
    /// after ([`Clients::take_deferred`]).
    pub fn defer(&mut self, id: ClientId, line: Vec<u8>) {
        if let Some(client) = self.client(id).filter(|c| !c.aborted) {
            client.deferred.push(line);
        }
    }

    /// The command lines kept while the client had to wait, to run now in
    /// order (none while it still must).
    pub fn take_deferred(&mut self, id: ClientId) -> Vec<Vec<u8>> {
        match self.client(id).filter(|c| !c.aborted && !c.must_wait()) {
            Some(client) => std::mem::take(&mut client.deferred),
            None => Vec::new(),
        }
    }

    /// The reply a client was owed, and after it those held behind it. A
    /// client gone meanwhile gets nothing.
    pub fn release(&mut self, id: ClientId, text: &str, now: Instant) {
        let Some(client) = self.client(id).filter(|c| !c.aborted) else { return };
        let Some(held) = client.owed.take() else { return };
        client.queued.extend_from_slice(text.as_bytes());
        client.queued.push(b'\n');
        client.queued.extend_from_slice(&held);
        client.output_since.get_or_insert(now);
    }
}
