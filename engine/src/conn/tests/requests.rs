//! Requests parsed and answered from the preformatted pages: keep-alive,
//! pipelining, back-pressure, errors however the input is cut.

use super::*;

#[test]
fn a_keep_alive_request_is_answered_and_reading_goes_on() {
    let mut h = Harness::new();
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert_eq!(h.conn.timer(), Timer::Header);
    h.input(GET);
    h.flush();
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.answered, 1);
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
    assert!(h.conn.is_idle());
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Idle, h.now + TIMEOUTS.idle_ms));
}

#[test]
fn pipelined_requests_go_out_in_one_send() {
    let mut h = Harness::new();
    h.input(&[GET, GET, GET].concat());
    let bytes = h.start_send().expect("a send is due");
    assert!(h.start_send().is_none(), "one send at a time");
    h.complete(&bytes, bytes.len());
    assert_eq!(h.statuses(), [200, 200, 200]);
    assert_eq!(h.answered, 3);
}

#[test]
fn a_client_that_asks_to_close_gets_a_plain_close() {
    let mut h = Harness::new();
    h.input(GET_CLOSE);
    assert_eq!(h.conn.phase(), Phase::Finishing { linger: false });
    h.flush();
    assert!(h.conn.is_closed());
    assert!(!h.conn.take_half_close(), "no lingering");
}

#[test]
fn a_full_queue_pauses_reading_until_the_replies_are_sent() {
    let mut h = Harness::new();
    // Alternating kinds fill the run-length queue fast.
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    h.input(&burst);
    assert_eq!(h.conn.phase(), Phase::Paused);
    assert!(!h.conn.wants_read(), "back-pressure: stop reading");
    h.flush();
    assert_eq!(h.answered, 40, "the held input is answered once the queue drains");
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
}

/// Identical pipelined requests fill no run-length entry, so the bound on
/// what is owed is in bytes: a client that sends and never reads stops
/// being read (and TCP holds it back) once its answers owe [`OWED_BYTES`].
#[test]
fn a_client_that_never_reads_is_read_only_until_its_answers_owe_the_bound() {
    let mut h = Harness::new();
    let page = h.world.responses.len_of(Reply::OkKeepAlive);
    let bound = OWED_BYTES.div_ceil(page);
    let chunk = GET.repeat(CARRY / GET.len());
    let mut taken = 0;
    for _ in 0..4 * bound * GET.len() / chunk.len() {
        taken += h.input(&chunk);
        if h.conn.phase() == Phase::Paused && !h.conn.wants_read() {
            break;
        }
    }
    assert_eq!(h.conn.phase(), Phase::Paused, "it stops reading");
    assert!(!h.conn.wants_read());
    assert!(taken <= bound * GET.len() + CARRY, "took {taken} bytes for {bound} answers of {page} bytes");
    assert!(taken >= (bound - 1) * GET.len(), "it answers up to the bound: took {taken}");
    // Sent at last: every request taken is answered, in order, and reading goes on.
    let mut sends = 0;
    while h.conn.phase() == Phase::Paused {
        h.flush();
        sends += 1;
        assert!(sends < bound, "it never resumed");
    }
    h.flush();
    assert_eq!(h.answered as usize, taken / GET.len());
    assert_eq!(h.conn.phase(), Phase::Reading);
    assert!(h.conn.wants_read());
}

#[test]
fn input_beyond_the_carry_waits_while_paused_and_is_taken_after_the_send() {
    let mut h = Harness::new();
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let burst: Vec<u8> = (0..40).flat_map(|i| if i % 2 == 0 { GET.to_vec() } else { head.to_vec() }).collect();
    assert_eq!(h.input(&burst), burst.len());
    assert_eq!(h.conn.phase(), Phase::Paused);
    let more = GET.repeat(CARRY / GET.len() * 2);
    let taken = h.input(&more);
    assert!(taken < more.len(), "the carry holds {CARRY} bytes, not {}", more.len());
    assert_eq!(h.conn.phase(), Phase::Paused, "waiting, not closed");
    let mut at = taken;
    while at < more.len() {
        h.flush();
        at += h.input(&more[at..]);
    }
    h.flush();
    assert_eq!(h.answered as usize, 40 + more.len() / GET.len());
}

#[test]
fn a_closed_connection_ignores_everything() {
    let mut h = Harness::new();
    h.peer_closed();
    assert!(h.conn.is_closed());
    h.input(GET);
    h.at_deadline();
    assert!(h.conn.is_closed());
    assert!(h.start_send().is_none());
    assert!(!h.conn.wants_read());
}

#[test]
fn a_cr_alone_before_a_request_line_is_refused_however_the_input_is_cut() {
    // Whole, a CR not followed by LF before a request line is malformed (400).
    let mut whole = Harness::new();
    whole.input(&[GET, b"\r", GET].concat());
    whole.flush();
    assert_eq!(whole.statuses(), [200, 400]);
    // The same when a read ends with the CR, after a request or alone.
    let mut after = Harness::new();
    after.input(&[GET, b"\r"].concat());
    after.input(GET);
    after.flush();
    assert_eq!(after.statuses(), [200, 400], "CR at the end of a read after a request");
    let mut alone = Harness::new();
    alone.input(GET);
    alone.input(b"\r");
    alone.input(GET);
    alone.flush();
    assert_eq!(alone.statuses(), [200, 400], "CR alone in a read");
    let mut doubled = Harness::new();
    doubled.input(b"\r");
    doubled.input(&[b"\r\n", GET].concat());
    doubled.flush();
    assert_eq!(doubled.statuses(), [400], "CR, then CR LF");
    // Its LF in the next read makes it a blank line, ignored as before.
    let mut blank = Harness::new();
    blank.input(&[GET, b"\r"].concat());
    blank.flush();
    assert!(blank.conn.is_idle(), "a CR waiting for its LF is no request begun");
    blank.input(&[b"\n", GET].concat());
    blank.flush();
    assert_eq!(blank.statuses(), [200, 200]);
}

#[test]
fn errors_answering_a_head_request_carry_no_content() {
    // RFC 9110 §9.3.2: no content in any response to HEAD, errors included:
    // a client reads none, so its bytes would be taken for the next response.
    for (request, status) in [
        (&b"HEAD / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"[..], 417),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"HEAD / HTTP/1.1\r\n\r\n", 400),
        (b"\r\nHEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ] {
        for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
            let mut h = make();
            h.input(&[GET, request].concat());
            h.flush();
            let text = h.sent_text();
            assert_eq!(h.statuses(), [200, status], "{text:?}");
            let error = &text[text.rfind("HTTP/1.1 ").unwrap()..];
            assert!(error.ends_with("\r\n\r\n") && error.contains("Connection: close\r\n"), "{error:?}");
        }
    }
    // A body too slow to finish: 408, headers only too.
    let mut h = Harness::new();
    h.input(b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert!(h.sent_text().ends_with("\r\n\r\n"), "{:?}", h.sent_text());
    // The same errors for a GET keep their content.
    let mut h = Harness::new();
    h.input(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n");
    h.flush();
    assert!(h.sent_text().ends_with("\r\n\r\nExpectation Failed\n"), "{:?}", h.sent_text());
}

/// Feeds `input` cut in two at every position, with a request after it,
/// and returns the statuses each cut got, once sent (all of them when the
/// cuts agree; the test compares them to what it expects).
fn statuses_at_every_cut(input: &[u8], make: fn() -> Harness) -> Vec<(usize, Vec<u16>, Phase)> {
    let stream = [input, GET].concat();
    (1..stream.len())
        .map(|cut| {
            let mut h = make();
            h.input(&stream[..cut]);
            h.input(&stream[cut..]);
            h.flush();
            (cut, h.statuses(), h.conn.phase())
        })
        .collect()
}

#[test]
fn a_chunked_body_outside_the_grammar_is_400_however_the_input_is_cut() {
    // RFC 9112 §7.1, §7.1.1: whitespace after a size with no `;`, a `;` with
    // no name, a bare LF ending a trailer line or the body: 400 and a close.
    let head = &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..];
    for (framing, want) in [
        (&b"5 \r\nhello\r\n0\r\n\r\n"[..], &[400][..]),
        (b"5;\r\nhello\r\n0\r\n\r\n", &[400]),
        (b"5\r\nhello\r\n0\r\nX: 1\n\r\n", &[400]),
        (b"5\r\nhello\r\n0\r\n\n", &[400]),
        (b"5 ;name\r\nhello\r\n0;name=value;q=\"x y\"\r\nX: 1\r\n\r\n", &[200, 200]),
    ] {
        for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
            for (cut, statuses, phase) in statuses_at_every_cut(&[head, framing].concat(), make) {
                let shown = String::from_utf8_lossy(framing);
                assert_eq!(statuses, want, "{shown:?} cut at {cut}");
                if want == [400] {
                    assert_eq!(phase, Phase::Lingering, "{shown:?} cut at {cut}: an error closes");
                }
            }
        }
    }
}

#[test]
fn an_asterisk_target_is_for_options_only() {
    // RFC 9112 §3.2.4: `*` is OPTIONS' target; for another method it is
    // malformed (400, close), a HEAD's error without content.
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 64)] {
        let mut h = make();
        h.input(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.input(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [200, 400], "{:?}", h.sent_text());
        assert_eq!(h.conn.phase(), Phase::Lingering);
        let mut h = make();
        h.input(b"HEAD * HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [400]);
        assert!(h.sent_text().ends_with("\r\n\r\n"), "{:?}", h.sent_text());
        // Authority-form outside CONNECT: the same.
        let mut h = make();
        h.input(b"GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert_eq!(h.statuses(), [400]);
    }
}

#[test]
fn a_body_timeout_408_and_a_503_for_a_body_are_counted_as_other_errors_are() {
    // Every final reply queued counts as a request parsed (the worker's
    // per-request work), errors included: a 400 ...
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    h.input(b"c");
    assert_eq!(h.conn.take_parsed(), 0, "a body on its way is no request yet");
    h.input(&[b"de", BAD].concat());
    h.flush();
    assert_eq!(h.statuses(), [200, 400]);
    assert_eq!((h.conn.take_parsed(), h.answered), (2, 2));
    // ... and the 408 of a body that stopped coming.
    let mut h = Harness::new();
    h.input(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    assert_eq!(h.conn.take_parsed(), 0);
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!((h.conn.take_parsed(), h.answered), (1, 1));
    // ... and the 503 of a body with no buffer free to gather it in.
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    h.flush();
    assert_eq!(h.statuses(), [503]);
    assert_eq!((h.conn.take_parsed(), h.answered), (1, 1));
}
