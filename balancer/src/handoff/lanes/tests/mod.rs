//! The lane's books: batches settled exactly once from the worker's shared
//! acks, one batch in the worker's socket at a time, custody until the ack,
//! a wake-up asked for only when the master would wait, and what a dead
//! worker leaves.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{channel_pair, Ack, MAX_FDS};
use ringmaster_engine::monotonic_ns;
use ringmaster_engine::shared_acks::SharedAcks;

mod gone;
mod retry;
mod settle;
mod texts;

use super::*;

/// `n` real descriptors (the lane owns and closes them) and their numbers.
fn fds(n: usize) -> (Vec<OwnedFd>, Vec<RawFd>) {
    let fds: Vec<OwnedFd> =
        (0..n).map(|_| OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"))).collect();
    let numbers = fds.iter().map(AsRawFd::as_raw_fd).collect();
    (fds, numbers)
}

/// Queues `count` new fds on `lane`; their numbers.
fn enqueued(lane: &mut Lane, count: usize) -> Vec<RawFd> {
    let (batch, numbers) = fds(count);
    for fd in batch {
        lane.enqueue(fd);
    }
    numbers
}

fn numbers(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}

/// The worker's side of the shared acks, as its loop publishes them.
#[derive(Default)]
struct Worker {
    acks: SharedAcks,
    settled: u64,
}

impl Worker {
    /// Publishes one ack per `(received, adopted)`; true when the master
    /// asked for a wake-up.
    fn ack(&mut self, list: &[(usize, usize)]) -> bool {
        self.ack_at(list, monotonic_ns())
    }

    /// The same, the acks stamped `at` (nanoseconds on `CLOCK_MONOTONIC`).
    fn ack_at(&mut self, list: &[(usize, usize)], at: u64) -> bool {
        let list: Vec<Ack> = list
            .iter()
            .map(|&(received, adopted)| Ack { received: received as u16, adopted: adopted as u16 })
            .collect();
        let wake = self.acks.publish(self.settled, &list, at);
        self.settled += list.len() as u64;
        wake
    }
}

fn open_lane() -> (Lane, OwnedFd, Worker) {
    let (master, worker) = channel_pair().expect("socketpair");
    let mut lane = Lane::new();
    lane.open(master);
    (lane, worker, Worker::default())
}

/// Sends what the lane has queued and reports the send done.
fn send(lane: &mut Lane, out: &mut Vec<OwnedFd>) -> Sent {
    assert!(lane.next_send(Instant::now()).is_some(), "a message to send");
    lane.on_sent(1, Instant::now(), out)
}

/// Settles what the worker published: (adopted, declined, batches settled).
fn settle(lane: &mut Lane, worker: &Worker) -> (Vec<OwnedFd>, Vec<OwnedFd>, usize) {
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let settled = lane.settle_published(&worker.acks, &mut adopted, &mut declined);
    (adopted, declined, settled)
}
