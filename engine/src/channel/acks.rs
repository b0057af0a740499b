//! A worker's acknowledgements of the master's batches: one [`Ack`] per
//! `Connections` message, a loop turn's gathered in [`Acks`].

/// The worker's answer to one `Connections` message (worker -> master): of
/// the batch's fds, the first `received` reached the worker and the first
/// `adopted` of those are its connections now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    /// Fds that reached the worker (the rest were dropped by the kernel).
    pub received: u16,
    /// Fds the worker took; the rest it closed without touching the connection.
    pub adopted: u16,
}

/// Most batches one [`Acks`] holds: a worker publishes them once it is
/// full. No more than the shared acks' ring, so one publish never laps itself.
pub const MAX_ACKS: usize = 8;

/// The acks of the batches a worker took in one loop turn, in the order the
/// batches were sent, published together at the turn's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acks {
    list: [Ack; MAX_ACKS],
    len: usize,
}

impl Acks {
    /// No acks yet.
    pub const fn new() -> Acks {
        Acks { list: [Ack { received: 0, adopted: 0 }; MAX_ACKS], len: 0 }
    }

    /// Adds the ack of the next batch; false (and nothing added) when full:
    /// publish them first.
    pub fn push(&mut self, ack: Ack) -> bool {
        if self.len == MAX_ACKS {
            return false;
        }
        self.list[self.len] = ack;
        self.len += 1;
        true
    }

    /// The acks, oldest batch first.
    pub fn as_slice(&self) -> &[Ack] {
        &self.list[..self.len]
    }

    /// True when there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the acks (once published).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
