//! Messages the kernel refused for now, sent again to the same live
//! worker.

use super::*;

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
