//! The health path: ready or draining, ahead of any handler, in any
//! target form, with a body, as a `HEAD`.

use super::*;

/// The health path is told after empty lines, in the read that brings its
/// request or before it, first on the connection or after another request.
/// Until 2026-12-06, in the same read, its head began with the empty line,
/// not `GET `, and the handler (or the fixed page) answered it.
#[test]
fn the_health_path_is_told_after_empty_lines_wherever_they_arrive() {
    let probe = &b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"[..];
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for draining in [false, true] {
            for lead in [&b"\r\n"[..], b"\n", b"\r\n\r\n"] {
                for (inputs, answers) in [
                    (vec![[lead, probe].concat()], 1),
                    (vec![lead.to_vec(), probe.to_vec()], 1),
                    (vec![[GET, lead, probe].concat()], 2),
                    (vec![[GET, lead].concat(), probe.to_vec()], 2),
                ] {
                    let mut h = make();
                    if draining {
                        h.drain();
                    }
                    for input in &inputs {
                        h.input(input);
                    }
                    h.flush();
                    let text = h.sent_text();
                    let (status, body) = if draining { (503, "draining\n") } else { (200, "ready\n") };
                    let want: Vec<u16> = if answers == 2 { vec![200, status] } else { vec![status] };
                    let shown = String::from_utf8_lossy(lead);
                    assert_eq!(h.statuses(), want, "after {shown:?}, {} reads: {text}", inputs.len());
                    assert!(text.ends_with(body), "after {shown:?}, {} reads: {text}", inputs.len());
                    assert!(h.conn.is_closed());
                }
            }
        }
    }
}

#[test]
fn the_health_path_answers_ready_then_draining_ahead_of_any_handler() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        let mut h = make();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 200 OK\r\n"), "{}", h.sent_text());
        assert!(h.sent_text().ends_with("Connection: close\r\n\r\nready\n"), "{}", h.sent_text());
        assert!(h.conn.is_closed());
        let mut h = make();
        h.drain();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{}", h.sent_text());
        assert!(h.sent_text().ends_with("draining\n"), "{}", h.sent_text());
        // Other paths are the handler's (or the fixed body's), a prefix is not the path.
        let mut h = make();
        h.input(b"GET /healthzz HTTP/1.1\r\nHost: a\r\n\r\n");
        h.flush();
        assert!(!h.sent_text().contains("ready\n"), "{}", h.sent_text());
    }
}

/// A probe of the health path with a body (`Content-Length`, or `chunked`,
/// empty or not) is the health path's too, answered once its body is
/// read, whether the body comes with the head or after it, the handler's
/// body buffers all taken or not. Until 2026-12-06 it was the handler's
/// (or the fixed body's), `200` from a draining worker as well.
#[test]
fn a_probe_of_the_health_path_with_a_body_is_the_health_paths() {
    let makes: [fn() -> Harness; 3] =
        [Harness::new, || Harness::with_handler(1, 256), || Harness::with_handler(0, 256)];
    let probes: [(&[u8], &[u8]); 4] = [
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", b"abc"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"0\r\n\r\n"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
        (b"GET http://a/healthz HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", b"abc"),
    ];
    for (which, make) in makes.iter().enumerate() {
        for (head, body) in probes {
            for draining in [false, true] {
                for split in [false, true] {
                    let shown = format!(
                        "harness {which}, {:?}, draining {draining}, split {split}",
                        String::from_utf8_lossy(head)
                    );
                    let mut h = make();
                    if draining {
                        h.drain();
                    }
                    if split {
                        h.input(head);
                        h.input(body);
                    } else {
                        h.input(&[head, body].concat());
                    }
                    h.flush();
                    let text = h.sent_text();
                    let (status, content) =
                        if draining { ("503 Service Unavailable", "draining\n") } else { ("200 OK", "ready\n") };
                    let text = text.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n").unwrap_or(&text);
                    assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{shown}: {text}");
                    assert!(text.ends_with(&format!("Connection: close\r\n\r\n{content}")), "{shown}: {text}");
                    assert!(h.conn.is_closed(), "{shown}");
                }
            }
        }
        // A HEAD of it with a body: the status, without the content.
        let mut h = make();
        h.drain();
        h.input(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        h.flush();
        let text = h.sent_text();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "harness {which}: {text}");
        assert!(text.ends_with("\r\n\r\n"), "harness {which}: {text}");
        // A body that is refused is answered as any refused body is.
        let mut h = make();
        h.input(b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n");
        h.flush();
        assert!(h.sent_text().starts_with("HTTP/1.1 400 Bad Request\r\n"), "harness {which}: {}", h.sent_text());
        // Another path with a body is still the handler's.
        let mut h = make();
        h.input(b"GET /healthzz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        h.flush();
        assert!(!h.sent_text().contains("ready\n"), "harness {which}: {}", h.sent_text());
    }
}

/// The health path is matched as a handler's route sees it: an
/// absolute-form target (RFC 9112 §3.2.2: a server MUST accept it) names it
/// as its origin-form does. Until 2026-12-05 only `/healthz` did: an
/// absolute-form probe got the handler's answer, `200` from a lame duck too.
#[test]
fn the_health_path_is_matched_in_absolute_form() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for target in ["http://example/healthz", "HTTPS://example:8080/healthz"] {
            for draining in [false, true] {
                let mut h = make();
                if draining {
                    h.drain();
                }
                h.input(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
                h.flush();
                let text = h.sent_text();
                let (status, body) =
                    if draining { ("503 Service Unavailable", "draining\n") } else { ("200 OK", "ready\n") };
                assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{target}: {text}");
                assert!(text.ends_with(body), "{target}: {text}");
            }
        }
        // Another path, or the path with a query the health path has not.
        for target in
            ["http://example/healthzz", "http://healthz", "http://example/a/healthz", "http://example/healthz?a"]
        {
            let mut h = make();
            h.input(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            h.flush();
            assert!(!h.sent_text().contains("ready\n"), "{target}: {}", h.sent_text());
        }
    }
}

#[test]
fn a_health_path_with_a_query_needs_that_query_in_either_form() {
    let check = |target: &str, health_path: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        crate::conn::health::is_health_check(Reply::Ok, head.as_bytes(), Some(health_path.as_bytes()))
    };
    assert!(check("/status?full", "/status?full"));
    assert!(check("http://a:80/status?full", "/status?full"));
    assert!(!check("/status", "/status?full"));
    assert!(!check("http://a/status", "/status?full"));
    assert!(!check("/status?fuller", "/status?full"));
    assert!(!check("/status?full", "/status"));
    assert!(check("http://a", "/"));
    assert!(check("http://a/", "/"));
    assert!(!check("http://a?x", "/"));
    // A fragment is no part of the path or the query, as a handler's
    // `path()` and `query()` see them (until 2026-12-07 `http://a#/status`
    // was a probe of `/status`, and `/status#x` was not). The parser now
    // refuses a target with one (400), which is never a probe.
    assert!(!check("http://a#/status", "/status"));
    assert!(check("/status#x", "/status"));
    assert!(check("/status?full#x", "/status?full"));
    assert!(!check("/status#?full", "/status?full"));
}

/// A `HEAD` of the health path gets the status a `GET` gets, ready or
/// draining, with the head alone (RFC 9110 §9.3.2), from the fixed pages
/// and ahead of a handler alike.
#[test]
fn a_head_of_the_health_path_gets_its_status_without_content() {
    for make in [Harness::new as fn() -> Harness, || Harness::with_handler(1, 256)] {
        for draining in [false, true] {
            let mut h = make();
            if draining {
                h.drain();
            }
            h.input(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            h.flush();
            let text = h.sent_text();
            let (status, length) = if draining { ("503 Service Unavailable", 9) } else { ("200 OK", 6) };
            assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{text}");
            assert!(text.contains(&format!("\r\nContent-Length: {length}\r\n")), "{text}");
            assert!(text.ends_with("Connection: close\r\n\r\n"), "content after a HEAD's answer: {text}");
            assert!(h.conn.is_closed());
        }
    }
}
