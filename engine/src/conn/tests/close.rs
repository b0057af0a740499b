//! How a connection ends: a closing answer, the linger and its deadline,
//! the client's FIN in each phase, the reset watch.

use super::*;

#[test]
fn input_after_a_closing_reply_makes_the_close_linger() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    h.input(GET);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [200], "nothing after the closing reply is answered");
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert!(h.conn.take_half_close());
    assert!(!h.conn.take_half_close(), "once");
    assert!(h.conn.wants_read(), "lingering reads to see the FIN");
    h.input(GET);
    assert_eq!(h.conn.phase(), Phase::Lingering, "input is discarded");
    h.peer_closed();
    assert!(h.conn.is_closed());
}

#[test]
fn an_error_lingers_until_the_deadline_without_a_fin() {
    let mut h = Harness::new();
    h.input(BAD);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: true });
    h.flush();
    assert_eq!(h.statuses(), [400]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert_eq!(h.conn.timer(), Timer::Linger);
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn input_while_lingering_moves_the_deadline_on_up_to_the_cap() {
    let mut h = Harness::new();
    // A body over the limit: refused at its head, while the client still sends it.
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\npart");
    h.input(b"more of the body");
    h.flush();
    assert_eq!(h.statuses(), [413]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    let started = h.now;
    assert_eq!(h.conn.deadline(), started + LINGER_MS);
    // The client sends on, a piece in every fifth of the quiet window.
    while h.now + LINGER_MS / 5 + LINGER_MS <= started + LINGER_MOST_MS {
        h.now += LINGER_MS / 5;
        h.input(b"more of the body");
        assert_eq!(h.conn.deadline(), h.now + LINGER_MS, "input moves the deadline to a quiet window from now");
        assert_eq!(h.conn.phase(), Phase::Lingering);
    }
    // Near the cap it moves no further than the cap.
    h.now = started + LINGER_MOST_MS - LINGER_MS / 5;
    h.input(b"more of the body");
    assert_eq!(h.conn.deadline(), started + LINGER_MOST_MS, "the cap from the linger's start");
    h.now = started + LINGER_MOST_MS - 1;
    h.input(b"more of the body");
    assert_eq!(h.conn.deadline(), started + LINGER_MOST_MS);
    assert_eq!(h.conn.timer(), Timer::Linger);
    h.at_deadline();
    assert!(h.conn.is_closed(), "a client that never stops sending is cut off at the cap");
    assert_eq!(h.statuses(), [413], "nothing more is sent");
}

#[test]
fn a_quiet_window_ends_a_linger_that_input_moved_on() {
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.phase(), Phase::Lingering);
    for _ in 0..10 {
        h.now += LINGER_MS / 2;
        h.input(b"still sending");
    }
    let last_input = h.now;
    assert!(last_input > 1_000 + LINGER_MS, "input kept it past a fixed linger");
    h.now = last_input + LINGER_MS - 1;
    assert!(h.conn.deadline() > h.now, "not due within the quiet window");
    h.at_deadline();
    assert_eq!(h.now, last_input + LINGER_MS, "due a quiet window after the last input");
    assert!(h.conn.is_closed());

    // The client's FIN still ends it at once.
    let mut fin = Harness::new();
    fin.input(BAD);
    fin.flush();
    fin.now += LINGER_MS / 2;
    fin.input(b"still sending");
    fin.peer_closed();
    assert!(fin.conn.is_closed());
}

#[test]
fn a_draining_worker_does_not_move_a_linger_on() {
    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    h.now += LINGER_MS / 2;
    h.input(b"still sending");
    let deadline = h.now + LINGER_MS;
    assert_eq!(h.conn.deadline(), deadline);
    h.drain();
    h.now += LINGER_MS / 2;
    h.input(b"still sending");
    assert_eq!(h.conn.deadline(), deadline, "a drain waits for it no longer than a quiet window from the drain");
    h.at_deadline();
    assert!(h.conn.is_closed());
}

#[test]
fn the_peer_closing_in_each_phase() {
    // Reading, idle: closed at once.
    let mut h = Harness::new();
    h.peer_closed();
    assert!(h.conn.is_closed());
    // Reading with an incomplete request: it can never complete.
    let mut h = Harness::new();
    h.input(b"GET / HT");
    h.peer_closed();
    assert!(h.conn.is_closed());
    // Reading with answers owed: they go out, then the close.
    let mut h = Harness::new();
    h.input(&[GET, GET].concat());
    h.peer_closed();
    assert!(!h.conn.is_closed());
    assert!(!h.conn.wants_read());
    h.flush();
    assert_eq!(h.answered, 2);
    assert!(h.conn.is_closed());
    // Finishing: no more lingering, closed after the reply.
    let mut h = Harness::new();
    h.input(BAD);
    h.peer_closed();
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    h.flush();
    assert!(h.conn.is_closed());
    assert!(!h.conn.take_half_close());
    // Paused: the held requests are still answered.
    let mut h = Harness::new();
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    h.input(&burst);
    h.peer_closed();
    h.flush();
    assert_eq!(h.answered, 40);
    assert!(h.conn.is_closed());
    // Closed: nothing happens.
    h.peer_closed();
    assert!(h.conn.is_closed());
}

/// A send the socket took only part of leaves no send in flight (on epoll
/// the rest waits for the socket to drain) and nothing queued, yet the rest
/// is owed: the client's FIN must not close the connection before it goes.
/// (It did: an epoll worker cut a large answer short when the client had
/// half-closed after its requests, the client seeing our FIN mid-body.)
#[test]
fn the_rest_of_a_partial_send_is_owed_after_the_clients_fin() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(GET);
        let bytes = h.start_send().expect("a send is due");
        h.complete(&bytes, 10);
        h.peer_closed();
        assert!(!h.conn.is_closed(), "closed with 10 of {} bytes sent", bytes.len());
        h.flush();
        assert_eq!(h.sent, bytes, "the whole answer");
        assert!(h.conn.is_closed(), "then the close");
    }
}

/// Input that no answer follows asks for a watch of the socket (on io_uring
/// a reset behind it is reported by no send, and a multishot receive may
/// miss it); whole requests, which are answered, do not.
#[test]
fn input_no_answer_follows_needs_a_reset_watch() {
    let mut h = Harness::new();
    assert!(!h.conn.needs_reset_watch(), "nothing came");
    h.input(GET);
    h.flush();
    assert!(!h.conn.needs_reset_watch(), "a whole request: its answer's send sees a reset");
    h.input(b"\r\n\r\n");
    assert!(h.conn.needs_reset_watch(), "empty lines before a request line");

    let mut h = Harness::new();
    h.input(b"GET / HT");
    assert!(h.conn.needs_reset_watch(), "part of a request");

    let mut h = Harness::new();
    h.input(BAD);
    h.flush();
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert!(!h.conn.needs_reset_watch(), "lingering, nothing more came");
    h.input(GET);
    assert!(h.conn.needs_reset_watch(), "input while lingering");
    h.peer_closed();
    assert!(!h.conn.needs_reset_watch(), "closed");
}
