//! Batches settled from the worker's acks, once each, one in its socket at
//! a time; the wake-up asked for; the receive re-armed; the drain's close.

use super::*;

#[test]
fn the_time_a_worker_took_to_ack_is_its_delay_until_a_new_process_comes() {
    let (mut lane, _channel, mut worker) = open_lane();
    assert_eq!(lane.ack_delay(Instant::now()), Duration::ZERO, "nothing handed yet");
    enqueued(&mut lane, 2);
    let mut out = Vec::new();
    let sent_ns = monotonic_ns();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // The worker stamps its ack 3 ms after the send, whenever the master reads it.
    worker.ack_at(&[(2, 2)], sent_ns + 3_000_000);
    assert_eq!(settle(&mut lane, &worker).2, 1);
    let delay = lane.ack_delay(Instant::now());
    assert!((Duration::from_micros(2_500)..=Duration::from_millis(3)).contains(&delay), "{delay:?}");
    let (master, _worker_end) = channel_pair().expect("socketpair");
    lane.open(master);
    assert_eq!(lane.ack_delay(Instant::now()), Duration::ZERO, "a new process starts afresh");
}

#[test]
fn an_ack_settles_its_batch_once_whatever_the_worker_took() {
    let (mut lane, _channel, mut worker) = open_lane();
    let (batch, n) = fds(15);
    let mut batch = batch.into_iter();
    for fd in batch.by_ref().take(10) {
        lane.enqueue(fd);
    }
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert_eq!(settle(&mut lane, &worker).2, 0, "nothing published yet");
    // First batch: 6 of 10 arrived (fd limit), 4 of those adopted (then full).
    worker.ack(&[(6, 4)]);
    let (adopted, declined, settled) = settle(&mut lane, &worker);
    assert_eq!(numbers(&adopted), n[0..4]);
    assert_eq!(numbers(&declined), n[4..10], "what the worker did not take goes elsewhere");
    assert_eq!(settled, 1);
    assert_eq!(settle(&mut lane, &worker).2, 0, "read again, it settles nothing more");
    for fd in batch {
        lane.enqueue(fd);
    }
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // Second batch: nothing arrived at all; it is still settled, all declined.
    worker.ack(&[(0, 0)]);
    let (adopted, declined, _) = settle(&mut lane, &worker);
    assert!(adopted.is_empty());
    assert_eq!(numbers(&declined), n[10..15]);
    // A stray ack settles nothing more.
    worker.ack(&[(1, 1)]);
    let (adopted, declined, settled) = settle(&mut lane, &worker);
    assert!(adopted.is_empty() && declined.is_empty() && settled == 0);
    assert!(out.is_empty());
}

#[test]
fn an_ack_published_before_its_send_completion_waits_for_it() {
    // The worker may read the batch and publish its ack before the master's
    // loop has seen the send complete: the ack is kept until then.
    let (mut lane, _channel, mut worker) = open_lane();
    let n = enqueued(&mut lane, 3);
    assert!(lane.next_send(Instant::now()).is_some());
    worker.ack(&[(3, 3)]);
    assert_eq!(settle(&mut lane, &worker).2, 0, "the batch is not known as sent yet");
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Delivered);
    let (adopted, declined, settled) = settle(&mut lane, &worker);
    assert_eq!((numbers(&adopted), declined.len(), settled), (n, 0, 1));
}

#[test]
fn one_batch_in_the_socket_at_a_time_the_rest_waits_in_the_master() {
    let (mut lane, _channel, mut worker) = open_lane();
    let (first, _) = fds(3);
    for fd in first {
        lane.enqueue(fd);
    }
    let sent_at = Instant::now();
    assert!(lane.next_send(sent_at).is_some());
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Delivered);
    let (more, _) = fds(5);
    for fd in more {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_none(), "the batch in the socket is not settled yet");
    assert_eq!((lane.handed(), lane.queued(), lane.held_fds()), (3, 5, 8));
    assert!(lane.batches.len() <= MAX_UNSETTLED, "the shared acks' ring holds every unsettled batch");
    let later = sent_at + Duration::from_millis(30);
    assert_eq!(lane.ack_wait(later), Duration::from_millis(30), "the batch has waited since it went out");
    // The worker stalls: what is queued here goes elsewhere; only the batch
    // in its socket waits for it.
    let mut rerouted = Vec::new();
    lane.take_queued(&mut rerouted);
    assert_eq!((rerouted.len(), lane.queued(), lane.handed()), (5, 0, 3));
    // It comes back and settles: the next batch goes at once, the wait is over.
    worker.ack(&[(3, 3)]);
    let (adopted, _, _) = settle(&mut lane, &worker);
    assert_eq!((adopted.len(), lane.ack_wait(later)), (3, Duration::ZERO));
    for fd in rerouted {
        lane.enqueue(fd);
    }
    assert!(lane.next_send(Instant::now()).is_some(), "nothing in the socket: the queue goes out");
}

#[test]
fn a_wake_up_is_asked_for_only_when_the_master_would_wait_for_the_ack() {
    let (mut lane, _channel, mut worker) = open_lane();
    let mut out = Vec::new();
    assert!(!lane.awaits_ack(true), "no batch: nothing to wait for");
    lane.enqueue(fds(1).0.remove(0));
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert!(!lane.awaits_ack(false), "nothing waits behind the batch: the ack is read in passing");
    assert!(lane.awaits_ack(true), "held connections (or a stop) wait for it");
    lane.enqueue(fds(1).0.remove(0));
    assert!(lane.awaits_ack(false), "a connection queued behind it waits for it");
    // Asked before the ack: the worker's publish says to send the message.
    assert!(!lane.ask_wake(&worker.acks), "no ack yet");
    assert!(worker.ack(&[(1, 1)]), "the worker wakes the master");
    assert_eq!(settle(&mut lane, &worker).2, 1);
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // The ack came first: the master sees it, and no message is sent.
    assert!(!worker.ack(&[(1, 1)]), "nobody asked");
    assert!(lane.ask_wake(&worker.acks), "the ack is there: settle it now");
    assert_eq!(settle(&mut lane, &worker).2, 1);
    // A drain waits for the last ack too.
    lane.enqueue(fds(1).0.remove(0));
    lane.request_drain();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert!(lane.awaits_ack(false));
    assert!(!worker.ack(&[(1, 1)]), "the request that found its ack was withdrawn");
}

#[test]
fn a_receive_out_of_buffers_is_rearmed_an_ended_one_is_not() {
    let (mut lane, _channel, _worker) = open_lane();
    assert!(lane.next_recv().is_some());
    assert!(lane.next_recv().is_none(), "one receive armed");
    assert!(lane.on_received(-libc::ENOBUFS, false));
    assert!(lane.next_recv().is_some(), "out of buffers: armed again");
    assert!(lane.on_received(1, true), "a wake-up or a line: still open");
    assert!(!lane.on_received(0, false), "end of stream");
    assert!(lane.next_recv().is_none());
}

#[test]
fn batches_wait_for_acks_then_drain_then_close() {
    let (mut lane, _channel, mut worker) = open_lane();
    for fd in fds(MAX_FDS + 5).0 {
        lane.enqueue(fd);
    }
    lane.request_drain();
    assert!(!lane.is_routable());
    let mut out = Vec::new();
    assert!(lane.next_send(Instant::now()).is_some());
    assert!(lane.next_send(Instant::now()).is_none(), "one send at a time");
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Delivered);
    assert!(out.is_empty(), "copies are kept until the worker acknowledges");
    assert!(lane.next_send(Instant::now()).is_none(), "the rest waits for the ack");
    worker.ack(&[(MAX_FDS, MAX_FDS)]);
    let (adopted, declined, _) = settle(&mut lane, &worker);
    assert_eq!(adopted.len(), MAX_FDS, "the acknowledged batch is released");
    assert!(declined.is_empty() && lane.is_open());
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered, "the drain: the last batch is not settled yet");
    assert!(out.is_empty() && lane.is_open());
    worker.ack(&[(5, 3)]);
    let (adopted, declined, _) = settle(&mut lane, &worker);
    assert!(!lane.is_open(), "closed once settled");
    assert_eq!((adopted.len(), declined.len()), (3, 2), "a draining worker may decline too");
    assert!(!lane.is_routable());
    assert!(lane.next_send(Instant::now()).is_none() && lane.next_recv().is_none());
}
