//! The lane's books: batches settled exactly once from the worker's shared
//! acks, one batch in the worker's socket at a time, custody until the ack,
//! a wake-up asked for only when the master would wait, and what a dead
//! worker leaves.

use ringmaster_engine::channel::{channel_pair, Ack};

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

#[test]
fn lines_go_after_the_connections_queued_before_them_and_settle_nothing() {
    let (mut lane, _channel, mut worker) = open_lane();
    let n = enqueued(&mut lane, 2);
    assert!(lane.enqueue_text(b"reset"));
    // The batch first (its fds leave the queue), then the line.
    assert!(lane.next_send(Instant::now()).is_some());
    assert!(lane.pending.is_empty() && lane.in_flight.len() == 2 && lane.texts.len() == 1);
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Delivered);
    // Then the line, and only once.
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert!(lane.next_send(Instant::now()).is_none());
    // A line from the worker settles no batch.
    assert!(lane.on_received(12, true));
    assert_eq!(lane.handed(), 2);
    worker.ack(&[(2, 2)]);
    let (adopted, _, _) = settle(&mut lane, &worker);
    assert_eq!(numbers(&adopted), n);
    // A draining worker takes no more lines.
    lane.request_drain();
    assert!(!lane.enqueue_text(b"late"));
}

#[test]
fn lines_a_worker_does_not_take_are_queued_up_to_a_bound() {
    let (mut lane, _channel, _worker) = open_lane();
    let line = [b'x'; 1000];
    let mut queued = 0;
    while lane.enqueue_text(&line) {
        queued += 1;
        assert!(queued <= MOST_TEXT_QUEUED / line.len(), "queued past the bound");
    }
    assert_eq!(queued, MOST_TEXT_QUEUED / line.len());
    assert!(lane.first_text_refusal(line.len()), "the first refusal is said");
    assert!(!lane.enqueue_text(&line));
    assert!(!lane.first_text_refusal(line.len()), "once");
    // The worker takes one: room for one more, and a refusal after it is said again.
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    assert!(lane.enqueue_text(&line));
    assert!(!lane.enqueue_text(&line));
    assert!(lane.first_text_refusal(line.len()));
}

#[test]
fn a_new_worker_on_a_lane_whose_old_one_left_lines_untaken_is_told_of_again() {
    let (mut lane, _channel, worker) = open_lane();
    let line = [b'x'; 1000];
    while lane.enqueue_text(&line) {}
    assert!(lane.first_text_refusal(line.len()), "said for the wedged worker");
    // It dies with its lines untaken; a new worker takes the lane.
    lane.mark_gone();
    let (mut closed, mut out) = (Vec::new(), Vec::new());
    lane.finish_gone(&worker.acks, &mut closed, &mut out);
    assert!(lane.is_free());
    let (master, _new_worker) = channel_pair().expect("socketpair");
    lane.open(master);
    // The new one wedges before it takes a line: its refusal is said too.
    while lane.enqueue_text(&line) {}
    assert!(lane.first_text_refusal(line.len()), "the new worker's first refusal is said");
}

#[test]
fn a_batch_the_kernel_refuses_for_now_goes_again_to_the_same_live_worker() {
    for errno in [libc::ENOBUFS, libc::ENOMEM, libc::ETOOMANYREFS] {
        let (mut lane, _channel, _worker) = open_lane();
        let n = enqueued(&mut lane, 3);
        let now = Instant::now();
        assert!(lane.next_send(now).is_some());
        let mut out = Vec::new();
        assert_eq!(lane.on_sent(-errno, now, &mut out), Sent::Retry, "errno {errno}");
        assert!(out.is_empty(), "errno {errno}: nothing to re-route, the worker is alive");
        assert!(lane.is_routable() && !lane.can_finish(), "errno {errno}: the worker keeps its lane");
        assert_eq!((lane.queued(), lane.handed()), (3, 0), "errno {errno}: the batch waits here again");
        assert!(lane.next_send(now).is_none(), "errno {errno}: not again at once");
        assert!(lane.next_send(now + SEND_RETRY_PAUSE).is_some(), "errno {errno}: again after the pause");
        assert_eq!(numbers(&lane.in_flight), n, "errno {errno}: the same batch, in order");
        assert_eq!(lane.on_sent(1, now + SEND_RETRY_PAUSE, &mut out), Sent::Delivered);
        assert_eq!(lane.handed(), 3);
    }
}

#[test]
fn a_line_refused_for_now_leaves_the_batch_in_the_socket_to_the_worker_that_has_it() {
    let (mut lane, _channel, mut worker) = open_lane();
    let n = enqueued(&mut lane, 2);
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    // The batch is in the worker's socket, not yet acknowledged; a line follows.
    assert!(lane.enqueue_text(b"reset"));
    let now = Instant::now();
    assert!(lane.next_send(now).is_some());
    assert_eq!(lane.on_sent(-libc::ENOBUFS, now, &mut out), Sent::Retry);
    assert!(out.is_empty(), "the batch the worker has is not re-routed");
    assert!(lane.is_routable() && !lane.can_finish() && lane.is_open(), "the worker keeps its lane");
    // The worker adopts the batch and says so: it is settled as its own.
    worker.ack(&[(2, 2)]);
    let (adopted, declined, _) = settle(&mut lane, &worker);
    assert_eq!((numbers(&adopted), declined.len()), (n, 0));
    // The line goes again, once.
    assert!(lane.next_send(now).is_none());
    assert!(lane.next_send(now + SEND_RETRY_PAUSE).is_some());
    assert_eq!(lane.on_sent(6, now + SEND_RETRY_PAUSE, &mut out), Sent::Delivered);
    assert!(lane.texts.is_empty() && lane.next_send(now + SEND_RETRY_PAUSE).is_none());
}

#[test]
fn a_drain_refused_for_now_goes_again_and_the_unsettled_batch_stays_the_workers() {
    let (mut lane, _channel, mut worker) = open_lane();
    let n = enqueued(&mut lane, 2);
    let mut out = Vec::new();
    assert_eq!(send(&mut lane, &mut out), Sent::Delivered);
    lane.request_drain();
    let now = Instant::now();
    assert!(lane.next_send(now).is_some(), "the drain");
    assert_eq!(lane.on_sent(-libc::ENOMEM, now, &mut out), Sent::Retry);
    assert!(out.is_empty() && !lane.can_finish() && lane.is_open());
    assert!(lane.next_send(now + SEND_RETRY_PAUSE).is_some(), "the drain again");
    assert_eq!(lane.on_sent(1, now + SEND_RETRY_PAUSE, &mut out), Sent::Delivered, "the batch is not settled yet");
    worker.ack(&[(2, 2)]);
    let (adopted, _, _) = settle(&mut lane, &worker);
    assert_eq!(numbers(&adopted), n);
    assert!(!lane.is_open(), "closed once the drain is out and the batch settled");
}
