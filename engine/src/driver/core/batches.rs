//! The master's batches on the worker's side: a message taken from the
//! inbox (the connections it carries owned, what the kernel dropped
//! counted), and every batch acknowledged, the acks published together once
//! per loop turn in the shared slot (a wake-up sent when the master asked).

use std::os::fd::{AsFd, OwnedFd};

use super::Core;
use crate::channel::{send_wake, Ack, Received, Tag, MAX_FDS};
use crate::sys::monotonic_ns;

/// A batch of connections from the master, owned now.
pub(in crate::driver) struct Batch {
    pub(in crate::driver) fds: [Option<OwnedFd>; MAX_FDS],
    pub(in crate::driver) received: Received,
}

impl Batch {
    /// Connections the master sent that the kernel could not install (the
    /// worker at its open-file limit): the master hands them on, and the
    /// worker closes as many idle connections so that the next ones fit.
    pub(in crate::driver) fn short(&self) -> usize {
        short_of(&self.received)
    }
}

/// Fds a `Connections` message lost on the way (for a `Text` one, `sent`
/// is its length, not a count of fds).
fn short_of(received: &Received) -> usize {
    match received.tag {
        Some(Tag::Connections) => received.sent.saturating_sub(received.fds),
        _ => 0,
    }
}

impl Core<'_> {
    /// Takes the connections of a message of `len` bytes just received into
    /// the inbox.
    pub(in crate::driver) fn take_batch(&mut self, len: usize) -> Batch {
        let mut fds: [Option<OwnedFd>; MAX_FDS] = [const { None }; MAX_FDS];
        let mut count = 0;
        // SAFETY: called once per completed recvmsg into the inbox, with its length.
        let received = unsafe {
            self.inbox.take_received(len, &mut |fd| {
                if count < MAX_FDS {
                    fds[count] = Some(fd);
                    count += 1;
                }
            })
        };
        if short_of(&received) > 0 || (received.truncated && received.tag == Some(Tag::Connections)) {
            // At the open-file limit: the kernel dropped the rest of the batch.
            // The master still holds those connections and hands them on.
            self.counts.fd_limit_hits += 1;
        }
        Batch { fds, received }
    }

    /// Settles a batch once it is adopted: every `Connections` message gets
    /// exactly one ack, whatever arrived. The ack waits for the next
    /// [`Core::flush_acks`], which must come before the batch's connections
    /// are read (a worker that dies serving them takes them along): both
    /// loops flush at once and only then drive the batch's connections.
    /// A `Text` message asks for no ack: its line
    /// goes to the handler. `live`: the connections open now, the batch's
    /// included. False when the master is gone.
    pub(in crate::driver) fn acknowledge(&mut self, received: &Received, adopted: usize, live: usize) -> bool {
        if received.tag == Some(Tag::Text) {
            // The master sends only text it read as UTF-8 (a control command).
            if let Ok(text) = std::str::from_utf8(self.inbox.text(received)) {
                let handler = &mut *self.handler;
                if crate::panic_guard::guarded(crate::panic_guard::Call::OnMessage, || handler.on_message(text))
                    .is_none()
                {
                    // The line is lost to this worker; it serves on.
                    self.scratch.count_panic();
                }
            }
            return true;
        }
        if received.tag != Some(Tag::Connections) || self.sources.channel.is_none() {
            return true;
        }
        let ack = Ack { received: received.fds as u16, adopted: adopted as u16 };
        if self.acks.push(ack) {
            return true;
        }
        // A full message: send it and start the next.
        let sent = self.flush_acks(live);
        self.acks.push(ack);
        sent
    }

    /// Publishes the acks gathered this turn, if any, in the shared slot
    /// (once per loop turn, before the loop waits), `live` (the connections
    /// open now) first: the master stops counting the acknowledged
    /// connections as handed over when it reads the acks, and must find them
    /// counted as live by then, else for a moment they are counted nowhere
    /// and the next connections go to this worker as if it had room for
    /// them. A message goes to the master only when it asked for one (it
    /// waits for these acks). False when the master is gone.
    pub(in crate::driver) fn flush_acks(&mut self, live: usize) -> bool {
        if self.acks.is_empty() {
            return true;
        }
        // `accepted` before `live`: a connection the stats count live is
        // counted taken too (until 2026-12-06 `accepted` waited for the end
        // of the turn, and a worker descheduled meanwhile showed 2 live of
        // 1 accepted while its clients already had their answers). The
        // release pairs with the stats reader's acquire of `live`, read
        // before `accepted` (`WorkerCounters::snapshot`).
        self.counters.accepted.store(self.counts.accepted, std::sync::atomic::Ordering::Relaxed);
        self.counts.live = live as u64;
        self.counters.live.store(self.counts.live, std::sync::atomic::Ordering::Release);
        // And the capacity: a batch that lost fds made the worker full
        // (`batch_hit_fd_limit`), which the master must see with the ack.
        self.counts.capacity = self.capacity_now();
        self.counters.capacity.store(self.counts.capacity, std::sync::atomic::Ordering::Relaxed);
        // With it, what the connections adopted this turn left to reclaim.
        self.counts.reclaimable = self.reclaimable() as u64;
        self.counters.reclaimable.store(self.counts.reclaimable, std::sync::atomic::Ordering::Relaxed);
        let wake = self.counters.acks.publish(self.acks_settled, self.acks.as_slice(), monotonic_ns());
        self.acks_settled += self.acks.as_slice().len() as u64;
        self.acks.clear();
        match self.sources.channel.as_ref() {
            Some(channel) if wake => send_wake(channel.as_fd()).is_ok(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::channel::{channel_pair, Message};
    use crate::config::EngineConfig;
    use crate::driver::Sources;
    use crate::handler::FixedBody;
    use crate::stats::StatsBlock;

    #[test]
    fn acks_are_published_with_their_connections_counted_live() {
        // The master stops counting a batch as handed over when it reads the
        // ack: the worker's live count must hold the batch by then, or for a
        // moment those connections count nowhere and more are dealt to it.
        let (master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig { max_conns: 4, ..EngineConfig::default() };
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler).expect("a core");
        core.publish(1);
        assert!(core.acks.push(Ack { received: 2, adopted: 2 }));
        assert!(core.acks.push(Ack { received: 1, adopted: 0 }));
        core.counts.accepted += 2;
        assert!(core.flush_acks(3), "the master's end is open");
        assert_eq!(counters.accepted.load(Ordering::Relaxed), 2, "the adopted counted taken with the acks");
        assert_eq!(counters.acks.settled(), 2, "both batches of the turn, at once");
        assert_eq!(counters.acks.ack(0), Ack { received: 2, adopted: 2 });
        assert_eq!(counters.acks.ack(1), Ack { received: 1, adopted: 0 });
        assert_eq!(counters.live.load(Ordering::Relaxed), 3, "the live count published with the acks");
        let master = UnixStream::from(master);
        master.set_nonblocking(true).expect("non-blocking");
        let mut message = [0u8; 8];
        assert!((&master).read(&mut message).is_err(), "no message: the master did not ask for one");
        // The master waits for the next ack: the worker wakes it, once.
        assert_eq!(counters.acks.ask_wake(2), 2, "no ack since");
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(core.flush_acks(4));
        assert_eq!((&master).read(&mut message).expect("the wake-up"), 1);
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(core.flush_acks(5));
        assert!((&master).read(&mut message).is_err(), "asked once, woken once");
        assert_eq!(counters.acks.settled(), 4);
        // A master that is gone cannot be woken: the worker learns it is gone.
        counters.acks.ask_wake(4);
        drop(master);
        assert!(core.acks.push(Ack { received: 1, adopted: 1 }));
        assert!(!core.flush_acks(6), "the master is gone");
    }

    #[test]
    fn a_line_of_text_from_the_master_is_no_batch_short_of_fds() {
        // A `Text` message's length field is its length: read as a count of
        // fds sent, every line (`ctl send`) counted as an fd-limit hit (the
        // master then warned that the worker was at its open-file limit),
        // and closed that many idle connections as if fds had been lost.
        let (master, worker) = channel_pair().expect("channel pair");
        let config = EngineConfig::default();
        let stats = StatsBlock::private(1).expect("stats block");
        let counters = stats.slot(0).expect("slot 0");
        let mut handler = FixedBody::new(b"hello\n".to_vec());
        let sources = Sources { channel: Some(worker), ..Sources::default() };
        let mut core = Core::new(&config, sources, counters, &mut handler).expect("a core");
        // The master's side of `ctl send`: a `Text` message of the line.
        let mut line = Message::new();
        let header = line.prepare_send_text(b"reset the counts");
        // SAFETY: `header` points into `line`, alive and unmoved for the call.
        let sent = unsafe { libc::sendmsg(master.as_raw_fd(), header, 0) };
        assert!(sent > 0, "send a line: {}", std::io::Error::last_os_error());
        let channel = core.sources.channel.as_ref().expect("channel").as_fd();
        let len = crate::channel::recv_nonblocking(channel, &mut core.inbox).expect("recv").expect("a message");
        let batch = core.take_batch(len);
        assert_eq!(batch.received.tag, Some(Tag::Text));
        assert_eq!(batch.short(), 0, "a line carries no fds to lose");
        assert_eq!(core.counts.fd_limit_hits, 0, "nor is it an fd-limit hit");
    }
}
