//! Empty lines before a request line: skipped wherever they arrive,
//! beginning no request.

use super::*;

#[test]
fn empty_lines_between_requests_begin_nothing() {
    let mut h = Harness::new();
    h.input(GET);
    h.flush();
    let deadline = h.conn.deadline();
    h.now += 10;
    // Alone, or after a request in the same input: ignored either way.
    assert_eq!(h.input(b"\r\n"), 2);
    assert!(h.conn.is_idle(), "a blank line is not a request begun");
    assert_eq!((h.conn.timer(), h.conn.deadline()), (Timer::Idle, deadline), "nor does it refresh the idle clock");
    h.input(&[GET, b"\r\n\n\r"].concat());
    h.flush();
    assert!(h.conn.is_idle());
    assert_eq!(h.statuses(), [200, 200]);
    // A `\r` left waiting for its `\n`, then the next request.
    h.input(&[b"\n", GET].concat());
    h.flush();
    assert_eq!(h.statuses(), [200, 200, 200]);
    // So a drain closes it after the short grace, not the header timeout.
    h.now += DRAIN_RECENT_MS;
    h.input(b"\r\n");
    let now = h.now;
    h.drain();
    assert_eq!(h.conn.deadline(), now + DRAIN_GRACE_MS);
    // A blank line inside a header block is still its end.
    let mut split = Harness::new();
    split.input(b"GET / HTTP/1.1\r\nHost: a\r\n");
    split.input(b"\r\n");
    split.flush();
    assert_eq!(split.statuses(), [200]);
}

/// Empty lines before a request line count toward no limit, wherever they
/// arrive: a head of `--max-header` bytes after them is served whether they
/// come in its read, in a read of their own or after a request; one a byte
/// longer is refused in every case. Until 2026-12-06 they counted in the
/// head's read only: `431` there, `200` when they came alone.
#[test]
fn empty_lines_before_a_head_count_toward_no_limit_wherever_they_arrive() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for (len, status) in [(8192, 200), (8193, 431)] {
            let head = head_of(len);
            for lead in [&b"\r\n"[..], b"\n", b"\r\n\n\r\n"] {
                let shown = String::from_utf8_lossy(lead);
                for (inputs, want) in [
                    (vec![[lead, &head].concat()], vec![status]),
                    (vec![lead.to_vec(), head.clone()], vec![status]),
                    (vec![[GET, lead, &head].concat()], vec![200, status]),
                    (vec![[GET, lead].concat(), head.clone()], vec![200, status]),
                ] {
                    let mut h = make();
                    for input in &inputs {
                        h.input(input);
                    }
                    h.flush();
                    let cuts: Vec<usize> = inputs.iter().map(Vec::len).collect();
                    assert_eq!(h.statuses(), want, "{len}-byte head after {shown:?}, reads of {cuts:?}");
                }
            }
        }
    }
}

/// A client that sends nothing but empty lines is cut off by the timer that
/// runs when they come: the header timer from the connection's start before
/// a first request, the idle timer from the last answer after one. They
/// move neither.
#[test]
fn a_client_sending_only_empty_lines_is_cut_off_by_the_timer_that_runs() {
    for answered_first in [false, true] {
        let mut h = Harness::new();
        if answered_first {
            h.input(GET);
            h.flush();
        }
        let (timer, deadline) = (h.conn.timer(), h.conn.deadline());
        let want = if answered_first {
            (Timer::Idle, h.now + TIMEOUTS.idle_ms)
        } else {
            (Timer::Header, h.now + TIMEOUTS.header_ms)
        };
        assert_eq!((timer, deadline), want);
        while h.now + 100 < deadline {
            h.now += 100;
            // Line ends cut anywhere, a `\r` and its `\n` in two reads among them.
            for lines in [&b"\r"[..], b"\n\r\n", b"\n\r", b"\n"] {
                assert_eq!(h.input(lines), lines.len());
            }
            assert_eq!((h.conn.timer(), h.conn.deadline()), (timer, deadline), "at {}", h.now);
        }
        h.at_deadline();
        assert!(h.conn.is_closed(), "answered first: {answered_first}");
        assert_eq!(h.conn.touched().0, 0, "nothing was carried");
    }
}

#[test]
fn a_head_after_dropped_empty_lines_is_parsed_from_its_own_start() {
    // The parser keeps how far it looked into an incomplete head; empty
    // lines it looked at and the connection dropped are no part of the
    // next read's head. Until the parser forgot them, a bad request line of
    // their length waited for more input.
    let mut h = Harness::new();
    h.input(&[GET, b"\r\n\r\n"].concat());
    h.input(b"BAD\n");
    h.flush();
    assert_eq!(h.statuses(), [200, 400]);
    // And a request that follows them is answered as ever.
    let mut h = Harness::new();
    h.input(&[GET, b"\r\n"].concat());
    h.input(b"G");
    h.input(&GET[1..]);
    h.flush();
    assert_eq!(h.statuses(), [200, 200]);
}
