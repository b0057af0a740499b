//! A drain: idle connections hurried out, the last answer made to close,
//! the answers settled first.

use super::*;

#[test]
fn draining_closes_after_the_last_answer_and_hurries_idle_connections() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.now += DRAIN_RECENT_MS;
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_GRACE_MS, "a connection idle a while gets a short grace");
    h.input(&[GET, GET].concat());
    assert!(h.start_send().is_none(), "the answers wait a moment for more input");
    // More comes within the moment: answered too, and the wait starts over.
    h.now += DRAIN_SETTLE_MS / 2;
    h.input(GET);
    assert!(h.start_send().is_none());
    h.settle_into_a_closing_answer(4, CLOSING_HI);
    assert_eq!(h.sent_text().matches("Connection: close").count(), 1, "only the last answer closes");
}

#[test]
fn draining_keeps_a_connection_used_a_moment_ago_for_its_next_request() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    let answered = h.now;
    h.now += DRAIN_GRACE_MS / 2;
    h.drain();
    assert_eq!(h.conn.deadline(), answered + DRAIN_RECENT_MS, "kept a while after its last answer");
    // Past the short grace, before that: the client's next request comes.
    h.now += DRAIN_GRACE_MS * 3;
    assert!(h.conn.deadline() > h.now, "not due at the short grace");
    h.input(GET);
    h.settle_into_a_closing_answer(2, CLOSING_HI);

    // One that stays quiet closes then, and no later.
    let mut quiet = Harness::new();
    quiet.input(GET);
    quiet.flush();
    let answered = quiet.now;
    quiet.drain();
    assert_eq!(quiet.conn.deadline(), answered + DRAIN_RECENT_MS);
}

#[test]
fn draining_waits_longer_for_a_first_request_than_for_a_next_one() {
    let mut h = Harness::new();
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_FIRST_REQUEST_GRACE_MS, "no request yet: the longer grace");
    h.now += DRAIN_GRACE_MS * 2;
    h.input(GET);
    assert!(h.conn.deadline() < now + DRAIN_FIRST_REQUEST_GRACE_MS, "then only the settle moment");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 1, "the first request, late, is answered");
    assert!(h.sent_text().contains("Connection: close"), "{}", h.sent_text());
}

/// Draining, input taken up from the carry after a pause is the end of
/// what the client sent as much as a read that empties the socket is: its
/// answers settle, and the last one closes the connection. (They went out at
/// once, all keep-alive, and the connection was cut once idle.)
#[test]
fn draining_input_taken_up_after_a_pause_settles_and_closes_with_its_last_answer() {
    // Past the run-length queue (alternating kinds), past a handler's output (two largest answers).
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let alternating: Vec<u8> = (0..41).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    settles_after_a_pause(Harness::new(), &alternating, 41, CLOSING_HI);
    settles_after_a_pause(Harness::with_handler(1, 256), &GET.repeat(100), 100, "Connection: close\r\n\r\nGET ");
}

/// Draining, `burst` (`requests` requests) pauses `h`; the answers queued
/// before the pause go out at once, those of the input taken up after it
/// settle, and the last, ending with `last`, closes.
fn settles_after_a_pause(mut h: Harness, burst: &[u8], requests: u32, last: &str) {
    h.input(GET);
    h.flush();
    h.drain();
    h.input(burst);
    assert_eq!(h.conn.phase(), Phase::Paused);
    while h.conn.phase() == Phase::Paused {
        let bytes = h.start_send().expect("the answers queued before the pause go out at once");
        h.complete(&bytes, bytes.len());
    }
    assert!(h.start_send().is_none(), "the answers of the input taken up wait a moment for more");
    h.settle_into_a_closing_answer(1 + requests, last);
    let text = h.sent_text();
    assert_eq!(text.matches("Connection: close").count(), 1, "only the last answer closes: {text}");
}

#[test]
fn a_drain_settling_keeps_its_deadline_when_a_send_completes() {
    let mut h = Harness::new();
    h.input(GET);
    let in_flight = h.start_send().expect("a send");
    h.drain();
    h.input(GET);
    let settle_at = h.now + DRAIN_SETTLE_MS;
    // The send in flight completes: the idle clock is refreshed, the settle's is not lost.
    h.complete(&in_flight, in_flight.len());
    assert!(h.conn.deadline() <= settle_at, "deadline {} after the settle at {settle_at}", h.conn.deadline());
    assert!(h.start_send().is_none(), "still settling");
    h.settle_into_a_closing_answer(2, CLOSING_HI);
}

/// The same rest is no idle connection: a drain does not hurry it out (nor
/// may a full worker reclaim it). (A drain closed it a second in, an epoll
/// worker cutting off a slow reader's large answer at every stop and reload.)
#[test]
fn the_rest_of_a_partial_send_is_owed_through_a_drain() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(GET);
        let bytes = h.start_send().expect("a send is due");
        h.complete(&bytes, 10);
        let idle_deadline = h.conn.deadline();
        assert_eq!(idle_deadline, h.now + TIMEOUTS.idle_ms, "a slow reader has the idle timeout");
        assert!(!h.conn.is_idle() && !h.conn.is_reclaimable(), "the rest is owed");
        h.now += DRAIN_RECENT_MS;
        h.drain();
        assert_eq!(h.conn.deadline(), idle_deadline, "not hurried as an idle connection");
        h.flush();
        assert_eq!(h.sent, bytes, "the whole answer");
    }
}
