//! `--health-path`: every worker answers it itself, `200 ready` while it
//! serves, before any handler sees the request; other paths are untouched.

use crate::util;

use util::*;

/// One worker with `--health-path /healthz` and a 60 s `--drain-delay`, ready.
fn one_worker_with_a_long_drain_delay() -> Server {
    let s = Server::start(&["--workers", "1", "--health-path", "/healthz", "--drain-delay", "60"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    s
}

/// SIGTERM, and the wait until the master says the lame duck has begun.
fn become_a_lame_duck(s: &Server) {
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("SIGTERM received: lame duck for 60.0 s"), IO_TIMEOUT);
}

#[test]
fn the_health_path_answers_ready_and_closes() {
    let s = Server::start(&["--workers", "2", "--health-path", "/healthz"]);
    for _ in 0..4 {
        let mut c = s.connect();
        let resp = c.request(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "ready\n"));
        assert!(resp.has_connection("close"), "{resp:?}");
        c.expect_closed();
    }
    // Everything else is the handler's: the fixed body here.
    let mut c = s.connect();
    c.get_ok();
    let other = c.request(b"GET /healthz/more HTTP/1.1\r\nHost: a\r\n\r\n");
    check_ok(&other);
}

/// An absolute-form target (RFC 9112 §3.2.2: a server MUST accept it)
/// names the health path as its origin-form does, `GET` and `HEAD`, ready
/// and as a lame duck. Until 2026-12-05 it got the handler's `200`, lame
/// duck or not.
#[test]
fn the_health_path_is_matched_in_absolute_form() {
    let s = one_worker_with_a_long_drain_delay();
    let probe = |status: u16, body: &str| {
        for target in ["http://example/healthz", "http://example:8080/healthz"] {
            let mut c = s.connect();
            let resp = c.request(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            assert_eq!((resp.status, resp.body_str().as_str()), (status, body), "{target}: {resp:?}");
            assert!(resp.has_connection("close"), "{target}: {resp:?}");
            c.expect_closed();
            let mut c = s.connect();
            c.send(format!("HEAD {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            let resp = c.read_head();
            let length = body.len().to_string();
            let got = (resp.status, resp.header("content-length"));
            assert_eq!(got, (status, Some(length.as_str())), "{target}: {resp:?}");
            c.expect_closed();
        }
        // Another path in absolute form is the handler's.
        check_ok(&s.connect().request(b"GET http://example/healthz/more HTTP/1.1\r\nHost: a\r\n\r\n"));
    };
    probe(200, "ready\n");
    become_a_lame_duck(&s);
    probe(503, "draining\n");
}

/// `HEAD` of the health path: the status a `GET` gets, ready and then as a
/// lame duck, with the head alone (RFC 9110 §9.3.2; HAProxy's `option
/// httpchk HEAD /healthz` probes so). Until 2026-12-05 it was the handler's
/// plain `200`, lame duck or not, so such a probe never saw a worker go.
#[test]
fn a_head_of_the_health_path_gets_the_status_of_a_get() {
    let s = one_worker_with_a_long_drain_delay();
    let probe = |status: u16, length: &str| {
        let mut c = s.connect();
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        let resp = c.read_head();
        assert_eq!((resp.status, resp.header("content-length")), (status, Some(length)), "{resp:?}");
        assert!(resp.has_connection("close"), "{resp:?}");
        // Nothing after the head: a content would be read as the next answer.
        c.expect_closed();
    };
    probe(200, "6");
    become_a_lame_duck(&s);
    probe(503, "9");
    // Other requests are still served through the delay.
    s.connect().get_ok();
}

/// Empty lines before the probe's request line (RFC 9112 §2.2: ignored)
/// leave it the health path's, wherever they arrive: in the probe's read,
/// in a read of their own, after a request on the same connection. Until
/// 2026-12-06 a probe whose read began with them got the fixed page's `200`
/// (its head did not start with `GET `), from a lame duck too.
#[test]
fn the_health_path_is_told_after_empty_lines_wherever_they_arrive() {
    let s = one_worker_with_a_long_drain_delay();
    let get = &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..];
    let probe = &b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"[..];
    let check = |status: u16, body: &str| {
        for lead in [&b"\r\n"[..], b"\n"] {
            let (together, pipelined, get_then_lead) =
                ([lead, probe].concat(), [get, lead, probe].concat(), [get, lead].concat());
            let cases: [(Vec<&[u8]>, bool); 4] = [
                (vec![&together], false),
                (vec![lead, probe], false),
                (vec![&pipelined], true),
                (vec![&get_then_lead, probe], true),
            ];
            for (reads, after_a_get) in cases {
                let shown = format!(
                    "after {:?}, {} reads, after a GET: {after_a_get}",
                    String::from_utf8_lossy(lead),
                    reads.len()
                );
                let mut c = s.connect();
                c.send_reads(s.addr(), reads.iter().copied());
                if after_a_get {
                    check_ok(&c.try_read().unwrap_or_else(|e| panic!("{shown}: {e}")));
                }
                let resp = c.try_read().unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert_eq!((resp.status, resp.body_str().as_str()), (status, body), "{shown}: {resp:?}");
                c.expect_closed();
            }
        }
    };
    check(200, "ready\n");
    become_a_lame_duck(&s);
    check(503, "draining\n");
}

/// A probe with a body (`Content-Length`, or `chunked` even when empty)
/// is the health path's as any other: ready, then `503` from a lame duck,
/// the body in the probe's read or after it. Until 2026-12-06 it got the
/// fixed page's `200` with keep-alive, from a lame duck too.
#[test]
fn a_probe_with_a_body_is_the_health_paths() {
    let s = one_worker_with_a_long_drain_delay();
    let probes: [(&[u8], &[u8]); 3] = [
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", b"abc"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"0\r\n\r\n"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
    ];
    let check = |status: u16, body: &str| {
        for (head, content) in probes {
            for split in [false, true] {
                let shown = format!("{:?}, split {split}", String::from_utf8_lossy(head));
                let mut c = s.connect();
                if split {
                    c.send_reads(s.addr(), [head, content]);
                } else {
                    c.send(&[head, content].concat());
                }
                let resp = c.try_read().unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert_eq!((resp.status, resp.body_str().as_str()), (status, body), "{shown}: {resp:?}");
                assert!(resp.has_connection("close"), "{shown}: {resp:?}");
                c.expect_closed();
            }
        }
    };
    check(200, "ready\n");
    become_a_lame_duck(&s);
    check(503, "draining\n");
}

#[test]
fn a_health_path_must_be_a_path() {
    let (status, _, err) = util::procs::run_to_exit(&["--health-path", "healthz"], START_TIMEOUT);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("is not a path"), "{err}");
}
