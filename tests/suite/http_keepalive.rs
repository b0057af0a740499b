//! Keep-alive, Connection: close, HTTP/1.0, HEAD and the fixed response headers.

use crate::util;

use std::time::Duration;
use util::*;

#[test]
fn several_requests_on_one_connection() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    for _ in 0..10 {
        c.get_ok();
    }
    // Still open and usable after a pause.
    std::thread::sleep(Duration::from_millis(200));
    c.get_ok();
}

#[test]
fn response_headers_server_and_date() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    let r = c.request(GET);
    check_ok(&r);
    assert_eq!(r.header("server"), Some("ringmaster"));
    let date = r.header("date").expect("Date header");
    check_date(date);
    // The Date header follows the clock (patched once a second): within a
    // few seconds a later answer on the same connection carries a later one.
    let d1 = parse_imf_fixdate(date).unwrap();
    let mut last = date.to_string();
    let advanced = eventually(Duration::from_secs(5), || {
        let r2 = c.request(GET);
        check_ok(&r2);
        last = r2.header("date").expect("Date header").to_string();
        parse_imf_fixdate(&last).unwrap() > d1
    });
    assert!(advanced, "Date did not advance over 5 s: {date:?} then {last:?}");
}

#[test]
fn any_method_any_path() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    for req in [
        &b"GET /some/where?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"DELETE /thing/7 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"GET http://a/abs HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n",
    ] {
        let r = c.request(req);
        check_ok(&r);
        assert!(!r.has_connection("close"), "{r:?}");
    }
}

#[test]
fn connection_close_is_honoured() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.get_ok();
    // The response to Connection: close must carry it.
    c.request_ok_then_closed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
}

#[test]
fn connection_close_is_case_insensitive() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.request_ok_then_closed(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: Close\r\n\r\n");
}

#[test]
fn http10_closes_by_default() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    // The server closes after an HTTP/1.0 response, so it says Connection: close.
    let r = c.request_ok_then_closed(b"GET / HTTP/1.0\r\n\r\n");
    assert!(!r.has_connection("keep-alive"), "{r:?}");
}

#[test]
fn http10_keep_alive_stays_open() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    for _ in 0..3 {
        let r = c.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        check_ok(&r);
        assert!(
            r.has_connection("keep-alive"),
            "HTTP/1.0 keep-alive response must carry Connection: keep-alive: {r:?}"
        );
        assert!(!r.has_connection("close"), "{r:?}");
    }
    c.expect_silent_open(Duration::from_millis(300));
    // Then a plain HTTP/1.0 request on the same connection: answered, then closed.
    c.request_ok_then_closed(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
}

#[test]
fn http11_request_after_http10_keepalive_on_same_connection() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    let r = c.request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    check_ok(&r);
    assert!(r.has_connection("keep-alive"), "{r:?}");
    let r = c.request(GET);
    check_ok(&r);
    assert!(!r.has_connection("keep-alive"), "HTTP/1.1 responses need no Connection: keep-alive: {r:?}");
    assert!(!r.has_connection("close"), "{r:?}");
}

#[test]
fn head_then_get_on_same_connection() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_head();
    check_ok_head(&r);
    // If the server had sent a body for HEAD, it would show up as garbage here.
    let r = c.request(GET);
    check_ok(&r);
    c.send(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    check_ok_head(&c.read_head());
    c.expect_silent_open(Duration::from_millis(200));
}

#[test]
fn head_and_get_pipelined() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    let mut batch = Vec::new();
    batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    batch.extend_from_slice(GET);
    batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    batch.extend_from_slice(GET);
    c.send(&batch);
    check_ok_head(&c.read_head());
    check_ok(&c.read());
    check_ok_head(&c.read_head());
    check_ok_head(&c.read_head());
    check_ok(&c.read());
    c.expect_silent_open(Duration::from_millis(200));
}

#[test]
fn head_http10_keep_alive() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.send(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_head();
    check_ok_head(&r);
    assert!(r.has_connection("keep-alive"), "{r:?}");
    c.expect_silent_open(Duration::from_millis(200));
    check_ok(&c.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

#[test]
fn head_with_connection_close() {
    let s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let r = c.read_head();
    check_ok_head(&r);
    assert!(r.has_connection("close"), "{r:?}");
    c.expect_closed();
}

#[test]
fn custom_body() {
    let s = Server::start(&["--workers", "1", "--body", "ok"]);
    let mut c = s.connect();
    let r = c.request(GET);
    assert_eq!(r.status, 200, "{r:?}");
    check_common_headers(&r);
    assert_eq!(r.header("content-length"), Some("2"), "{r:?}");
    assert_eq!(r.body, b"ok");
}

#[test]
fn many_sequential_connections() {
    let s = Server::start(&["--workers", "1"]);
    for _ in 0..200 {
        let mut c = s.connect();
        c.get_ok();
    }
    let mut c = s.connect();
    c.get_ok();
}
