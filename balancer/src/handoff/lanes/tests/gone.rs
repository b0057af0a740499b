//! What a dead worker leaves handed back, and a new worker's acks counted
//! afresh.

use super::*;

#[test]
fn a_dead_worker_gives_back_every_unacknowledged_fd() {
    let (mut lane, channel, mut worker) = open_lane();
    let (all, n) = fds(2 * MAX_FDS + 3);
    for fd in all {
        lane.enqueue(fd);
    }
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // The worker acknowledged the batch, then died before the master read it.
    worker.ack(&[(MAX_FDS, MAX_FDS - 1)]);
    drop(channel);
    lane.mark_gone();
    assert!(!lane.is_routable());
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(&worker.acks, &mut closed, &mut out);
    assert_eq!(numbers(&closed), n[..MAX_FDS - 1], "what it adopted is closed, not re-routed");
    assert_eq!(out.len(), MAX_FDS + 4, "the rest goes to other workers");
    assert!(lane.is_free());
}

#[test]
fn a_send_that_lands_after_the_worker_died_is_handed_back_too() {
    let (mut lane, channel, worker) = open_lane();
    for fd in fds(5).0 {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some());
    drop(channel);
    lane.mark_gone();
    assert!(!lane.can_finish(), "not while the send is in flight");
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Delivered);
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(&worker.acks, &mut closed, &mut out);
    assert!(closed.is_empty(), "never acknowledged");
    assert_eq!(out.len(), 5);
}

#[test]
fn a_failed_send_gives_every_fd_back() {
    let (mut lane, _channel, worker) = open_lane();
    for fd in fds(MAX_FDS + 3).0 {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some());
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(-libc::EPIPE, Instant::now(), &mut out), Sent::Failed);
    assert_eq!(out.len(), MAX_FDS, "the batch that did not go out");
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(&worker.acks, &mut closed, &mut out);
    assert!(closed.is_empty());
    assert_eq!(out.len(), MAX_FDS + 3, "and what was still queued");
}

#[test]
fn a_new_worker_in_the_slot_starts_counting_its_acks_afresh() {
    let (mut lane, channel, mut worker) = open_lane();
    let mut out = Vec::new();
    lane.enqueue(fds(1).0.remove(0));
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    worker.ack(&[(1, 1)]);
    assert_eq!(settle(&mut lane, &worker).2, 1);
    drop(channel);
    lane.mark_gone();
    lane.finish_gone(&worker.acks, &mut out, &mut Vec::new());
    assert!(lane.is_free());
    // The master empties the slot before the next process starts, which
    // then numbers its acks from 0 in the same slot.
    worker.acks.reset();
    worker.settled = worker.acks.settled();
    assert_eq!(worker.settled, 0, "the new process reads an empty mailbox at its start");
    let (master, _channel) = channel_pair().expect("socketpair");
    lane.open(master);
    lane.enqueue(fds(1).0.remove(0));
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert_eq!(settle(&mut lane, &worker).2, 0, "the old process's ack does not settle the new batch");
    worker.ack(&[(1, 0)]);
    let (adopted, declined, settled) = settle(&mut lane, &worker);
    assert_eq!((adopted.len(), declined.len(), settled), (0, 1, 1), "the new process's own ack settles it");
}
