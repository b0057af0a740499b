//! The lane's books: batches settled exactly once, one batch in the worker's
//! socket at a time, custody until the ack, and what a dead worker leaves.

use std::os::fd::AsRawFd as _;

use ringmaster_engine::channel::channel_pair;

use super::*;
use crate::handoff::read_leftover_ack;

/// `n` real descriptors (the lane owns and closes them) and their numbers.
fn fds(n: usize) -> (Vec<OwnedFd>, Vec<RawFd>) {
    let fds: Vec<OwnedFd> =
        (0..n).map(|_| OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"))).collect();
    let numbers = fds.iter().map(AsRawFd::as_raw_fd).collect();
    (fds, numbers)
}

fn numbers(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}

/// An ack message settling one batch per `(received, adopted)`.
fn acks(list: &[(usize, usize)]) -> Vec<u8> {
    let mut acks = Acks::new();
    for &(received, adopted) in list {
        assert!(acks.push(Ack { received: received as u16, adopted: adopted as u16 }));
    }
    let mut bytes = [0u8; ACKS_LEN];
    let len = acks.encode(&mut bytes);
    bytes[..len].to_vec()
}

fn open_lane() -> (Lane, OwnedFd) {
    let (master, worker) = channel_pair().expect("socketpair");
    let mut lane = Lane::new();
    lane.open(master);
    (lane, worker)
}

/// Sends what the lane has queued and reports the send done.
fn send(lane: &mut Lane, out: &mut Vec<OwnedFd>) -> Sent {
    assert!(lane.next_send(Instant::now()).is_some(), "a message to send");
    lane.on_sent(true, out)
}

#[test]
fn an_ack_settles_its_batch_once_whatever_the_worker_took() {
    let (mut lane, _worker) = open_lane();
    let (batch, n) = fds(15);
    let mut batch = batch.into_iter();
    for fd in batch.by_ref().take(10) {
        lane.enqueue(fd);
    }
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert_eq!(lane.next_recv(), Some(lane.channel.as_ref().map(AsRawFd::as_raw_fd).unwrap()));
    // First batch: 6 of 10 arrived (fd limit), 4 of those adopted (then full).
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let message = acks(&[(6, 4)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut adopted, &mut declined));
    assert_eq!(numbers(&adopted), n[0..4]);
    assert_eq!(numbers(&declined), n[4..10], "what the worker did not take goes elsewhere");
    for fd in batch {
        lane.enqueue(fd);
    }
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // Second batch: nothing arrived at all; it is still settled, all declined.
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let message = acks(&[(0, 0)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut adopted, &mut declined));
    assert!(adopted.is_empty());
    assert_eq!(numbers(&declined), n[10..15]);
    // A stray ack settles nothing more.
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let message = acks(&[(1, 1)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut adopted, &mut declined));
    assert!(adopted.is_empty() && declined.is_empty());
    assert!(out.is_empty());
}

#[test]
fn one_batch_in_the_socket_at_a_time_the_rest_waits_in_the_master() {
    let (mut lane, _worker) = open_lane();
    let (first, _) = fds(3);
    for fd in first {
        lane.enqueue(fd);
    }
    let sent_at = Instant::now();
    assert!(lane.next_send(sent_at).is_some());
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
    let (more, _) = fds(5);
    for fd in more {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_none(), "the batch in the socket is not settled yet");
    assert_eq!((lane.handed(), lane.queued(), lane.held_fds()), (3, 5, 8));
    let later = sent_at + Duration::from_millis(30);
    assert_eq!(lane.ack_wait(later), Duration::from_millis(30), "the batch has waited since it went out");
    // The worker stalls: what is queued here goes elsewhere; only the batch
    // in its socket waits for it.
    let mut rerouted = Vec::new();
    lane.take_queued(&mut rerouted);
    assert_eq!((rerouted.len(), lane.queued(), lane.handed()), (5, 0, 3));
    // It comes back and settles: the next batch goes at once, the wait is over.
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let message = acks(&[(3, 3)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut adopted, &mut declined));
    assert_eq!((adopted.len(), lane.ack_wait(later)), (3, Duration::ZERO));
    for fd in rerouted {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some(), "nothing in the socket: the queue goes out");
}

#[test]
fn one_message_may_settle_several_batches_each_once() {
    let (mut lane, worker) = open_lane();
    let (all, n) = fds(6);
    let mut all = all.into_iter();
    let mut out = Vec::new();
    // Two batches outstanding (the worker died, and the lane settles what it left).
    lane.enqueue(all.next().unwrap());
    lane.enqueue(all.next().unwrap());
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    lane.batches.push_back((0, Instant::now()));
    for fd in all {
        lane.batches.back_mut().unwrap().0 += 1;
        lane.unacked.push_back(fd);
    }
    let message = acks(&[(2, 2), (4, 1)]);
    nix::sys::socket::send(worker.as_raw_fd(), &message, nix::sys::socket::MsgFlags::empty()).expect("ack");
    drop(worker);
    lane.mark_gone();
    let mut closed = Vec::new();
    lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
    assert_eq!(numbers(&closed), [n[0], n[1], n[2]], "both batches settled by one message");
    assert_eq!(numbers(&out), n[3..6], "what the second did not adopt goes elsewhere");
}

#[test]
fn an_unreadable_ack_settles_one_batch_as_adopted() {
    let (mut lane, _worker) = open_lane();
    for fd in fds(4).0 {
        lane.enqueue(fd);
    }
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    assert!(lane.on_received(1, true, b"?", &mut adopted, &mut declined));
    assert_eq!((adopted.len(), declined.len()), (4, 0), "never served twice");
}

#[test]
fn a_receive_out_of_buffers_is_rearmed_an_ended_one_is_not() {
    let (mut lane, _worker) = open_lane();
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    assert!(lane.next_recv().is_some());
    assert!(lane.next_recv().is_none(), "one receive armed");
    assert!(lane.on_received(-libc::ENOBUFS, false, &[], &mut adopted, &mut declined));
    assert!(lane.next_recv().is_some(), "out of buffers: armed again");
    assert!(!lane.on_received(0, false, &[], &mut adopted, &mut declined), "end of stream");
    assert!(lane.next_recv().is_none());
}

#[test]
fn batches_wait_for_acks_then_drain_then_close() {
    let (mut lane, _worker) = open_lane();
    for fd in fds(MAX_FDS + 5).0 {
        lane.enqueue(fd);
    }
    lane.request_drain();
    assert!(!lane.is_routable());
    let mut out = Vec::new();
    assert!(lane.next_send(Instant::now()).is_some());
    assert!(lane.next_send(Instant::now()).is_none(), "one send at a time");
    assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
    assert!(out.is_empty(), "copies are kept until the worker acknowledges");
    assert!(lane.next_send(Instant::now()).is_none(), "the rest waits for the ack");
    assert!(lane.next_recv().is_some());
    let mut declined = Vec::new();
    let message = acks(&[(MAX_FDS, MAX_FDS)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut out, &mut declined));
    assert_eq!(out.len(), MAX_FDS, "the acknowledged batch is released");
    assert!(declined.is_empty());
    out.clear();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered, "the drain: the last batch is not settled yet");
    assert!(out.is_empty());
    let mut declined = Vec::new();
    let message = acks(&[(5, 3)]);
    assert!(!lane.on_received(message.len() as i32, true, &message, &mut out, &mut declined), "closed once settled");
    assert_eq!((out.len(), declined.len()), (3, 2), "a draining worker may decline too");
    assert!(!lane.is_routable());
    assert!(lane.next_send(Instant::now()).is_none() && lane.next_recv().is_none());
}

#[test]
fn a_dead_worker_gives_back_every_unacknowledged_fd() {
    let (mut lane, worker) = open_lane();
    for fd in fds(2 * MAX_FDS + 3).0 {
        lane.enqueue(fd);
    }
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // The worker acknowledged the batch, then died before the master read it.
    let message = acks(&[(MAX_FDS, MAX_FDS)]);
    nix::sys::socket::send(worker.as_raw_fd(), &message, nix::sys::socket::MsgFlags::empty()).expect("ack");
    drop(worker);
    lane.mark_gone();
    assert!(!lane.is_routable());
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
    assert_eq!(closed.len(), MAX_FDS, "the acknowledged batch is closed, not re-routed");
    assert_eq!(out.len(), MAX_FDS + 3, "the rest goes to other workers");
    assert!(lane.is_free());
}

#[test]
fn a_send_that_lands_after_the_worker_died_is_handed_back_too() {
    let (mut lane, worker) = open_lane();
    for fd in fds(5).0 {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some());
    drop(worker);
    lane.mark_gone();
    assert!(!lane.can_finish(), "not while the send is in flight");
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
    assert!(closed.is_empty(), "never acknowledged");
    assert_eq!(out.len(), 5);
}

#[test]
fn a_failed_send_gives_every_fd_back() {
    let (mut lane, _worker) = open_lane();
    for fd in fds(MAX_FDS + 3).0 {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some());
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(false, &mut out), Sent::Failed);
    assert_eq!(out.len(), MAX_FDS, "the batch that did not go out");
    assert!(lane.can_finish());
    let mut closed = Vec::new();
    lane.finish_gone(read_leftover_ack, &mut closed, &mut out);
    assert!(closed.is_empty());
    assert_eq!(out.len(), MAX_FDS + 3, "and what was still queued");
}

#[test]
fn lines_go_after_the_connections_queued_before_them_and_settle_nothing() {
    let (mut lane, _worker) = open_lane();
    let (batch, n) = fds(2);
    for fd in batch {
        lane.enqueue(fd);
    }
    assert!(lane.enqueue_text(b"reset"));
    // The batch first (its fds leave the queue), then the line.
    assert!(lane.next_send(Instant::now()).is_some());
    assert!(lane.pending.is_empty() && lane.in_flight.len() == 2 && lane.texts.len() == 1);
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(true, &mut out), Sent::Delivered);
    // Then the line, and only once.
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert!(lane.next_send(Instant::now()).is_none());
    // A line from the worker among the acks settles no batch.
    let (mut adopted, mut declined) = (Vec::new(), Vec::new());
    let line = b"Mserved 1000";
    assert!(lane.on_received(line.len() as i32, true, line, &mut adopted, &mut declined));
    assert!(adopted.is_empty() && declined.is_empty());
    let message = acks(&[(2, 2)]);
    assert!(lane.on_received(message.len() as i32, true, &message, &mut adopted, &mut declined));
    assert_eq!(numbers(&adopted), n);
    // A draining worker takes no more lines.
    lane.request_drain();
    assert!(!lane.enqueue_text(b"late"));
}
