//! Lines for the worker's handler: in order behind connections, bounded,
//! a refusal said once.

use super::*;

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
fn a_drain_does_not_wait_behind_lines_the_worker_has_not_taken() {
    let (mut lane, _channel, _worker) = open_lane();
    let line = [b'x'; 1000];
    while lane.enqueue_text(&line) {}
    let queued = MOST_TEXT_QUEUED / line.len();
    // One line is lent to the kernel when the drain is asked: it stays until its send completes.
    assert!(lane.next_send(Instant::now()).is_some());
    assert_eq!(lane.request_drain(), (queued - 1, (queued - 1) * line.len()), "the rest are dropped");
    assert_eq!(lane.request_drain(), (0, 0), "and said once");
    let mut out = Vec::new();
    assert_eq!(lane.on_sent(1000, Instant::now(), &mut out), Sent::Delivered);
    // The drain next, and the channel closes after it.
    assert!(lane.next_send(Instant::now()).is_some(), "the drain");
    assert_eq!(lane.on_sent(1, Instant::now(), &mut out), Sent::Finished);
    assert!(lane.texts.is_empty() && lane.text_bytes == 0);
}
