//! A client that sends while answers are owed: asked whether it reads
//! (`ReaderWatch`) before the writer's deadline closes it.

use super::*;

#[test]
fn input_while_a_closing_answer_waits_for_its_reader_moves_no_deadline() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    let bytes = h.start_send().expect("send");
    // The client reads slowly, or not at all: part of the answer is taken.
    h.complete(&bytes, 10);
    assert!(h.start_send().is_some(), "the rest goes out, waiting for room");
    let deadline = h.conn.deadline();
    assert_eq!((h.conn.timer(), deadline), (Timer::Idle, h.now + TIMEOUTS.idle_ms), "send progress sets it");
    // It sends on and reads nothing: discarded input is no sign of a reader.
    for _ in 0..4 {
        h.now += TIMEOUTS.idle_ms / 5;
        h.input(b"x");
        assert_eq!(h.conn.deadline(), deadline, "input moved the deadline of an answer nobody reads");
    }
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    // Its reading moves it on.
    h.complete(b"0123456789", 10);
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms, "a send's progress moves it");
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn input_while_answers_wait_for_their_reader_moves_no_deadline_and_it_asks_the_kernel() {
    let mut h = Harness::new();
    let deadline = h.answer_waiting_for_its_reader();
    // It sends on: the start of a head, then whole requests, queued behind
    // the answer it does not read.
    for piece in [&b"GET / HT"[..], b"TP/1.1\r\nHost: a\r\n\r\n", GET, b"x"] {
        h.now += TIMEOUTS.idle_ms / 5;
        h.input(piece);
        assert_eq!(h.conn.deadline(), deadline, "input moved the deadline of answers nobody reads");
    }
    // The writer's deadline: the first look only sets the mark.
    assert!(h.look_at_deadline(Some(90_000)), "input came: the kernel is asked");
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms, "a patience more from the mark");
    h.now += TIMEOUTS.idle_ms / 5;
    h.input(b"x");
    // The next finds the same count: the client took nothing.
    assert!(h.look_at_deadline(Some(90_000)));
    assert!(h.conn.is_closed(), "a client that reads nothing is closed, however it sends");
}

#[test]
fn a_client_whose_kernel_takes_bytes_is_kept_without_a_send_completing() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(GET);
    // No send completes (a full socket's completes only once a third of it
    // is free), but the count moves at each look: it reads.
    for count in [900_000, 850_000, 870_000, 10] {
        assert!(h.look_at_deadline(Some(count)));
        assert!(!h.conn.is_closed(), "its client took bytes, down to {count}");
    }
    // Without more input too: its reading is what counts.
    assert!(h.look_at_deadline(Some(10)));
    assert!(h.conn.is_closed(), "then nothing in a patience");
}

#[test]
fn send_progress_makes_a_pending_look_moot_and_starts_the_watch_over() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(Some(5_000)), "the mark");
    h.now += 1;
    h.input(b"x");
    h.at_deadline();
    assert!(h.conn.take_reader_look(), "asked through the ring: the answer comes later");
    assert!(!h.conn.take_reader_look(), "once");
    // The rest of the answer goes out meanwhile (10 bytes of it).
    h.complete(b"0123456789", 10);
    let after_send = h.conn.deadline();
    assert_eq!(after_send, h.now + TIMEOUTS.idle_ms, "a send's progress moves it");
    h.conn.handle_unacknowledged(Some(5_000), &h.world.ctx());
    assert!(!h.conn.is_closed(), "the answer came after a send: moot");
    assert_eq!(h.conn.deadline(), after_send);
    // No input since the send: the deadline closes it, as before, unasked.
    assert!(!h.look_at_deadline(Some(5_000)), "no input during this clock: nothing asked");
    assert!(h.conn.is_closed());
}

#[test]
fn a_look_answered_after_the_last_answer_went_out_leaves_the_linger_alone() {
    let mut h = Harness::new();
    // Two reads before a send (a bundle's buffers): the second, a request
    // the server refuses, comes while the first's answer is owed.
    h.input(GET);
    h.input(BAD);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    let bytes = h.start_send().expect("both answers in one send");
    // The client reads nothing within the patience: asked through the ring.
    h.at_deadline();
    assert!(h.conn.take_reader_look());
    // Then it reads them all before the answer comes: the linger begins.
    h.complete(&bytes, bytes.len());
    assert_eq!(h.statuses(), [200, 400]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    let linger_ends = h.now + LINGER_MS;
    assert_eq!(h.conn.deadline(), linger_ends);
    h.conn.handle_unacknowledged(Some(1_000), &h.world.ctx());
    assert_eq!((h.conn.phase(), h.conn.deadline()), (Phase::Lingering, linger_ends), "the look is moot");
    // Nor does an unmoved count close it early (with a reset, its input unread).
    let mut unmoved = Harness::new();
    unmoved.input(GET);
    unmoved.input(BAD);
    let bytes = unmoved.start_send().expect("both answers in one send");
    assert!(unmoved.look_at_deadline(Some(1_000)), "the mark");
    unmoved.at_deadline();
    assert!(unmoved.conn.take_reader_look());
    unmoved.complete(&bytes, bytes.len());
    assert_eq!(unmoved.conn.phase(), Phase::Lingering);
    unmoved.conn.handle_unacknowledged(Some(1_000), &unmoved.world.ctx());
    assert_eq!(unmoved.conn.phase(), Phase::Lingering, "the look is moot");
}

#[test]
fn an_unanswered_look_closes_at_the_next_deadline_and_no_input_asks_nothing() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    h.at_deadline();
    assert!(h.conn.take_reader_look());
    assert!(!h.conn.is_closed(), "waiting for the answer");
    // No answer by the next deadline: closed, not asked again.
    assert!(!h.look_at_deadline(Some(1)));
    assert!(h.conn.is_closed());
    // A reader that sent nothing meanwhile: closed at the deadline, as before.
    let mut quiet = Harness::new();
    quiet.answer_waiting_for_its_reader();
    assert!(!quiet.look_at_deadline(Some(1)), "no ioctl for a connection that sent nothing");
    assert!(quiet.conn.is_closed());
}

#[test]
fn where_the_kernel_cannot_tell_input_since_the_last_look_keeps_it() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(None));
    assert!(!h.conn.is_closed(), "its input kept it, as before the kernel was asked");
    h.now += 1;
    h.input(b"x");
    assert!(h.look_at_deadline(None));
    assert!(!h.conn.is_closed());
    assert!(h.look_at_deadline(None));
    assert!(h.conn.is_closed(), "no input since the last look");
}

#[test]
fn a_closing_request_sent_while_answers_wait_keeps_the_writers_clock_and_its_look() {
    let mut h = Harness::new();
    let deadline = h.answer_waiting_for_its_reader();
    h.now += 1;
    // A pipelining reader's last request: the answers still owed go first.
    h.input(GET_CLOSE);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    assert_eq!(h.conn.deadline(), deadline, "its input moved nothing");
    assert!(h.look_at_deadline(Some(70_000)), "the mark");
    assert!(h.look_at_deadline(Some(60_000)), "asked again");
    assert!(!h.conn.is_closed(), "its client reads");
    assert!(h.look_at_deadline(Some(60_000)));
    assert!(h.conn.is_closed(), "then took nothing");
}

#[test]
fn a_body_begun_while_answers_are_owed_runs_its_own_timer() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    h.now += 1;
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Body, h.now + TIMEOUTS.body_ms));
}
