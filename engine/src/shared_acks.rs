//! Acks through the shared stats page: a worker settles the master's batches
//! by writing them into its own slot, and the master reads them each loop
//! turn, so an ack costs neither side a syscall nor the master a wake-up.
//!
//! The worker numbers the batches it settles from 0 (the master zeroes the
//! mailbox before the process starts): the ack of batch `n` goes into entry
//! `n % ACK_RING`, then `settled` moves past it. The master settles batch
//! `n` once, when it sees `settled > n`, from that entry. The worker never
//! overwrites an entry the master has not read, because the master sends a
//! batch only once the previous ones are settled: at most
//! [`MAX_UNSETTLED`] are ever unsettled, fewer than the ring holds.
//!
//! When the master would otherwise wait for an ack (connections queued
//! behind the batch, or a drain that waits for it) it raises `wake` and
//! reads `settled` again; the worker, after moving `settled`, reads `wake`
//! and, if raised, lowers it and sends a message on the channel. A
//! Dekker-style handshake: both sides store then load, all `SeqCst`, so at
//! least one of them sees the other's store: either the master sees the ack,
//! or the worker sees the request and wakes it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::channel::Ack;

/// Entries in the ring of acks.
pub const ACK_RING: usize = 8;
/// Most batches the master leaves unsettled at once (one in the worker's
/// socket: see the master's lanes).
pub const MAX_UNSETTLED: usize = 1;
const _: () = assert!(MAX_UNSETTLED <= ACK_RING);
// One publish (a loop turn's acks, at most `MAX_ACKS`) fits the ring.
const _: () = assert!(crate::channel::MAX_ACKS <= ACK_RING);

/// One worker's acks, in its stats slot.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SharedAcks {
    /// Batches the worker has settled since its process started.
    settled: AtomicU64,
    /// The ack of batch `n` in entry `n % ACK_RING`: `received` in the low
    /// half, `adopted` in the high half.
    entries: [AtomicU32; ACK_RING],
    /// When the worker published the ack in the same entry (nanoseconds on
    /// `CLOCK_MONOTONIC`): the master measures how long the worker took to
    /// take a batch from the time it sent it, whenever it comes to read the
    /// ack.
    acked_at: [AtomicU64; ACK_RING],
    /// Raised by the master when it waits for an ack: the worker sends it a
    /// message after its next publish.
    wake: AtomicU32,
}

impl SharedAcks {
    /// Empties the mailbox, before a new process uses the slot (master).
    pub fn reset(&self) {
        self.settled.store(0, Ordering::Relaxed);
        self.wake.store(0, Ordering::Relaxed);
    }

    /// Publishes the acks of the next batches, oldest first, from `first`
    /// (the batches settled so far) on, made at `now_ns` (worker). True when
    /// the master asked for a wake-up: send it a message.
    pub fn publish(&self, first: u64, acks: &[Ack], now_ns: u64) -> bool {
        if acks.is_empty() {
            return false;
        }
        for (n, ack) in (first..).zip(acks) {
            let entry = u32::from(ack.received) | u32::from(ack.adopted) << 16;
            self.entries[n as usize % ACK_RING].store(entry, Ordering::Relaxed);
            self.acked_at[n as usize % ACK_RING].store(now_ns, Ordering::Relaxed);
        }
        // Releases the entries (and the live count stored before) to the
        // master's acquire; `SeqCst` against its request for a wake-up.
        self.settled.store(first + acks.len() as u64, Ordering::SeqCst);
        self.wake.load(Ordering::SeqCst) != 0 && self.wake.swap(0, Ordering::SeqCst) != 0
    }

    /// Batches settled so far (master).
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// The ack of batch `n`, once [`SharedAcks::settled`] is past it (master).
    pub fn ack(&self, n: u64) -> Ack {
        let entry = self.entries[n as usize % ACK_RING].load(Ordering::Relaxed);
        let (received, adopted) = (entry as u16, (entry >> 16) as u16);
        // A worker never claims more adopted than received; if one did, it
        // adopted what arrived.
        Ack { received, adopted: adopted.min(received) }
    }

    /// When the worker published the ack of batch `n` (nanoseconds on
    /// `CLOCK_MONOTONIC`), once [`SharedAcks::settled`] is past it (master).
    pub fn acked_at(&self, n: u64) -> u64 {
        self.acked_at[n as usize % ACK_RING].load(Ordering::Relaxed)
    }

    /// Asks the worker for a message at its next publish, and reads again
    /// what it has settled (master): past what the master saw, the ack came
    /// meanwhile and the request is withdrawn; else the message will come.
    pub fn ask_wake(&self, seen: u64) -> u64 {
        self.wake.store(1, Ordering::SeqCst);
        let settled = self.settled.load(Ordering::SeqCst);
        if settled != seen {
            self.wake.store(0, Ordering::Relaxed);
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: Ack = Ack { received: 3, adopted: 2 };

    #[test]
    fn published_acks_are_read_in_order_and_wrap() {
        let acks = SharedAcks::default();
        let mut first = 0;
        for round in 0..3 * ACK_RING as u16 {
            let ack = Ack { received: round + 1, adopted: round };
            assert!(!acks.publish(first, &[ack], 1_000 + first), "nobody asked for a wake-up");
            assert_eq!(acks.settled(), first + 1);
            assert_eq!(acks.ack(first), ack);
            assert_eq!(acks.acked_at(first), 1_000 + first, "when it was published");
            first += 1;
        }
        assert!(!acks.publish(first, &[], 7), "nothing to publish");
        assert_eq!(acks.settled(), first);
    }

    #[test]
    fn a_wake_up_is_sent_once_when_asked_for_and_the_ack_came_after() {
        let acks = SharedAcks::default();
        assert_eq!(acks.ask_wake(0), 0, "no ack yet: the master waits for the message");
        assert!(acks.publish(0, &[ACK], 7), "asked for: the worker sends one");
        assert!(!acks.publish(1, &[ACK], 7), "and only once");
    }

    #[test]
    fn an_ack_that_came_first_withdraws_the_request() {
        let acks = SharedAcks::default();
        assert!(!acks.publish(0, &[ACK], 7));
        assert_eq!(acks.ask_wake(0), 1, "the master sees the ack itself");
        assert!(!acks.publish(1, &[ACK], 7), "so no message is sent");
    }

    #[test]
    fn an_ack_claiming_more_than_arrived_adopts_what_arrived() {
        let acks = SharedAcks::default();
        acks.publish(0, &[Ack { received: 1, adopted: 5 }], 7);
        assert_eq!(acks.ack(0), Ack { received: 1, adopted: 1 });
    }

    #[test]
    fn a_master_that_waits_batch_after_batch_is_always_woken() {
        // The handshake over many batches, one unsettled at a time as the
        // master sends them: requests withdrawn when the ack came first,
        // wake-ups left over from an earlier batch, the ring wrapping. The
        // master sleeps only after asking and seeing no ack; it must never
        // sleep through the ack of the batch it waits for.
        use std::sync::mpsc;
        use std::time::Duration;
        const BATCHES: u64 = 20_000;
        let acks = std::sync::Arc::new(SharedAcks::default());
        let (send_batch, batches) = mpsc::channel::<u64>();
        let (send_wake, wakes) = mpsc::channel::<()>();
        let worker = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for n in batches {
                    if n % 3 == 0 {
                        std::thread::yield_now();
                    }
                    let ack = Ack { received: (n % 7) as u16 + 1, adopted: (n % 5) as u16 };
                    if acks.publish(n, &[ack], n) && send_wake.send(()).is_err() {
                        return;
                    }
                }
            })
        };
        for n in 0..BATCHES {
            send_batch.send(n).expect("the worker thread");
            while acks.settled() <= n {
                if acks.ask_wake(n) != n {
                    break;
                }
                assert!(
                    wakes.recv_timeout(Duration::from_secs(5)).is_ok(),
                    "batch {n}: asked, no ack seen, never woken"
                );
            }
            let ack = acks.ack(n);
            assert_eq!((ack.received, ack.adopted), ((n % 7) as u16 + 1, ((n % 5) as u16).min((n % 7) as u16 + 1)));
        }
        drop(send_batch);
        worker.join().expect("the worker thread");
    }

    #[test]
    fn either_side_sees_the_other_across_threads() {
        // The handshake's promise under contention: a master that found no
        // ack after asking is always woken.
        for _ in 0..2_000 {
            let acks = std::sync::Arc::new(SharedAcks::default());
            let worker = {
                let acks = acks.clone();
                std::thread::spawn(move || acks.publish(0, &[ACK], 7))
            };
            let seen = acks.ask_wake(0);
            let woken = worker.join().expect("the worker thread");
            assert!(seen == 1 || woken, "the master saw no ack and was not woken");
        }
    }
}
