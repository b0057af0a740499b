//! Requests answered by a handler: bodies gathered or read in place, the
//! output buffer, a drain's last answer.

use super::*;

#[test]
fn a_handler_answers_and_pipelined_answers_share_one_send() {
    let mut h = Harness::with_handler(1, 256);
    h.input(&[GET, b"GET /b?x HTTP/1.1\r\nHost: a\r\n\r\n"].concat());
    let bytes = h.start_send().expect("a send");
    assert!(h.start_send().is_none());
    h.complete(&bytes, bytes.len());
    let text = h.sent_text();
    assert_eq!(h.statuses(), [200, 200]);
    assert!(text.contains("X-Path: /\r\nContent-Length: 4\r\n\r\nGET "), "{text}");
    assert!(text.ends_with("X-Path: /b\r\nContent-Length: 4\r\n\r\nGET "), "{text}");
    assert_eq!(h.answered, 2);
}

#[test]
fn draining_with_a_handler_closes_after_its_last_answer() {
    let mut h = Harness::with_handler(1, 256);
    h.input(GET);
    h.flush();
    h.drain();
    h.input(&[GET, b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n"].concat());
    assert!(h.start_send().is_none(), "the answers wait a moment for more input");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 3);
    let text = h.sent_text();
    assert!(text.ends_with("X-Path: /last\r\nContent-Length: 4\r\nConnection: close\r\n\r\nGET "), "{text}");
    assert_eq!(text.matches("Connection: close").count(), 1, "only the last answer closes: {text}");
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn draining_with_a_handler_closes_an_http10_keep_alive_client_too() {
    let mut h = Harness::with_handler(1, 256);
    h.drain();
    h.input(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h.at_deadline();
    h.flush();
    assert_eq!(h.answered, 1);
    let text = h.sent_text();
    assert!(text.ends_with("X-Path: /old\r\nContent-Length: 4\r\nConnection: close\r\n\r\nGET "), "{text}");
    assert!(!text.contains("keep-alive"), "{text}");
}

#[test]
fn a_body_that_arrives_with_its_head_is_read_where_it_lies() {
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    h.flush();
    assert!(h.sent_text().ends_with("\r\n\r\nPOST hello"), "no body buffer was needed: {}", h.sent_text());
}

#[test]
fn a_body_in_pieces_is_gathered_and_a_chunked_one_decoded() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel");
    h.input(b"lo ");
    h.input(b"wo");
    assert!(h.start_send().is_none(), "not answered before the body is whole");
    h.input(b"rld");
    h.flush();
    assert!(h.sent_text().ends_with("POST hello world"), "{}", h.sent_text());
    h.input(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    h.flush();
    assert!(h.sent_text().ends_with("POST abcde"), "{}", h.sent_text());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "the buffer is back");
}

#[test]
fn no_body_buffer_free_is_503_and_a_close() {
    let mut h = Harness::with_handler(0, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    h.flush();
    assert_eq!(h.statuses(), [503]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
}

#[test]
fn a_response_too_large_for_the_handler_buffers_is_500() {
    let mut h = Harness::with_handler(1, 8);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    h.flush();
    assert_eq!(h.statuses(), [500]);
    assert_eq!(h.conn.phase(), Phase::Reading, "the connection goes on");
}

#[test]
fn a_full_output_buffer_pauses_until_it_is_sent() {
    let mut h = Harness::with_handler(1, 256);
    // Each answer may take up to the largest framed size: the buffer holds two.
    h.input(&GET.repeat(100));
    assert_eq!(h.conn.phase(), Phase::Paused);
    assert!(!h.conn.wants_read());
    h.flush();
    assert_eq!(h.answered, 100, "held requests are answered once the buffer drains");
    assert_eq!(h.conn.phase(), Phase::Reading);
}

#[test]
fn a_client_that_asks_to_close_gets_the_handler_answer_then_a_plain_close() {
    let mut h = Harness::with_handler(1, 256);
    h.input(GET_CLOSE);
    h.flush();
    assert!(h.sent_text().contains("Connection: close\r\n"), "{}", h.sent_text());
    assert!(h.conn.is_closed());
}

#[test]
fn closing_releases_a_gathered_body_buffer() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(0));
    h.conn.release(&mut h.world.ctx());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1));
}

/// A body too slow to finish ends its request: the buffer it was gathered
/// in is free again with the `408`, not only when the connection closes
/// after lingering (until 2026-12-07 a client still sending at its 408 kept
/// it for up to 30 s more, and others meanwhile met `503`s).
#[test]
fn a_408_gives_the_body_buffer_back() {
    let mut h = Harness::with_handler(1, 256);
    h.input(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(0));
    h.at_deadline();
    h.flush();
    assert_eq!(h.statuses(), [408]);
    assert_eq!(h.conn.phase(), Phase::Lingering);
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "the buffer is back");
    // The rest of the body, come late, is discarded: the buffer stays free.
    h.now += 100;
    h.input(b"lo world");
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1));
    h.conn.release(&mut h.world.ctx());
    assert_eq!(h.world.dynamic.as_ref().map(|d| d.bodies.free_count()), Some(1), "given back once");
}
