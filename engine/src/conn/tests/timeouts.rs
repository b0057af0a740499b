//! The header, body and idle timers; a deadline passed while the driver
//! could not read.

use super::*;

#[test]
fn header_timeout_counts_from_the_first_byte_and_closes_silently() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.now += 5;
    h.input(b"GET / HTTP/1.1\r\n");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Header, h.now + TIMEOUTS.header_ms));
    let deadline = h.conn.deadline();
    h.now += 1_000;
    h.input(b"Host: a\r\n");
    assert_eq!(h.conn.deadline(), deadline, "a trickle does not move the header deadline");
    h.at_deadline();
    assert!(h.conn.is_closed());
    assert_eq!(h.statuses(), [200], "no answer to a timed-out header block");
}

#[test]
fn idle_timeout_closes_an_idle_connection() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    assert_eq!(h.conn.timer(), Timer::Idle);
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn a_slow_body_gets_408_and_the_body_deadline_grows_with_what_arrives() {
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    assert_eq!(h.conn.timer(), Timer::Body);
    let started = h.now;
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms);
    h.now += 1_000;
    h.input(&[b'x'; 2048]);
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms + 2_000, "2 KiB buy two seconds");
    // One byte a second buys nothing: the deadline does not move.
    for _ in 0..5 {
        h.now += 1_000;
        h.input(b"x");
    }
    assert_eq!(h.conn.deadline(), started + TIMEOUTS.body_ms + 2_000);
    h.at_deadline();
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn a_body_that_arrives_in_time_is_answered_and_the_timer_goes_back_to_idle() {
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel");
    assert_eq!(h.conn.timer(), Timer::Body);
    h.input(b"lo");
    h.flush();
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.conn.timer(), Timer::Idle);
}

impl Harness {
    /// The deadline passes while the driver had no buffer to read with
    /// (io_uring: every receive buffer held by other connections): returns
    /// whether the connection started its timer over.
    fn at_deadline_unread(&mut self) -> bool {
        self.at_deadline_starved(false)
    }

    /// As [`Harness::at_deadline_unread`], and whether the connection's
    /// receive still `waits_for_buffer` (not armed again since).
    fn at_deadline_starved(&mut self, waits_for_buffer: bool) -> bool {
        self.now = self.conn.deadline();
        self.sync();
        self.conn.postpone_for_unread_input(&self.world.ctx(), waits_for_buffer)
    }
}

/// A timer that waits on the client's input starts over when its deadline
/// passes while the worker could not read (its receive found no buffer):
/// until 2026-12-07 the header timer closed such a connection, its request
/// unread and unanswered, while other connections held the ring.
#[test]
fn a_deadline_passed_with_no_buffer_to_read_with_starts_over() {
    let mut h = Harness::new();
    assert_eq!(h.conn.timer(), Timer::Header);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.header_ms);
    assert!(!h.conn.is_closed());
    // Its request comes once a buffer does, and is answered.
    h.input(GET);
    h.flush();
    assert_eq!(h.statuses(), [200]);
    // Idle between requests: the same.
    assert_eq!(h.conn.timer(), Timer::Idle);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.idle_ms);
    // A body on its way: its clock runs from its start, which moves with
    // the wait, so the input that comes next does not find it run out.
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart");
    assert_eq!(h.conn.timer(), Timer::Body);
    assert!(h.at_deadline_unread());
    assert_eq!(h.conn.deadline(), h.now + TIMEOUTS.body_ms);
    h.now += 1;
    h.input(b"more");
    assert!(h.conn.deadline() > h.now, "the body's clock ran out with its input: {}", h.conn.deadline());
}

/// Draining, a connection whose receive waits for a buffer now waits a
/// drain's grace at a time, and is answered once its request is read: until
/// 2026-12-07 the drain's hurried deadline closed it, its request unread.
/// One whose receive is armed again is hurried as any other.
#[test]
fn a_drain_waits_a_grace_at_a_time_for_a_receive_that_waits_for_a_buffer() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.drain();
    assert!(h.at_deadline_starved(true));
    assert_eq!(h.conn.deadline(), h.now + DRAIN_GRACE_MS);
    assert!(h.at_deadline_starved(true));
    // Its next request, read at last: answered once the drain's moment for
    // more input is over, and that answer closes.
    h.input(GET);
    h.settle_into_a_closing_answer(2, CLOSING_HI);
    // Armed again, nothing to read: the drain does not wait on it.
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    h.drain();
    assert!(!h.at_deadline_starved(false));
}

/// What does not wait on the client's input is judged as before: answers
/// owed (the writer's clock), a drain, a linger.
#[test]
fn answers_owed_a_drain_or_a_linger_do_not_start_over() {
    let mut h = Harness::new();
    h.answer_waiting_for_its_reader();
    assert!(!h.at_deadline_unread());
    let mut h = Harness::new();
    h.drain();
    assert!(!h.at_deadline_unread());
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.timer(), Timer::Linger);
    assert!(!h.at_deadline_unread());
}
