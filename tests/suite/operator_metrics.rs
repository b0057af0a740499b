//! `--metrics ADDR`: the master's Prometheus endpoint. The page passes
//! Prometheus' own parser and linter (`promtool check metrics`), its values
//! are the stats line's after known traffic, and the endpoint is bounded:
//! one small request per connection, errors for anything else, silent
//! clients closed, no worker disturbed.

use crate::util;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use util::control::{control_path, status};
use util::ops::{metrics_addr, promtool_check, samples, scrape, send_raw, value};
use util::stats::{expect_worker, nobody_passed_over, num, stats_when_idle};
use util::*;

#[test]
fn the_page_passes_promtool_and_matches_the_stats_line() {
    let path = control_path("metrics", "match");
    let _ = std::fs::remove_file(&path);
    let s = Server::start(&["--workers", "2", "--metrics", "127.0.0.1:0", "--control", path.to_str().unwrap()]);
    let at = metrics_addr(&s);
    s.wait_workers_ready(2, START_TIMEOUT);
    // Known traffic: 4 connections of 3 requests each, dealt in turn in rr
    // (the default) while no worker is passed over.
    for _ in 0..4 {
        let mut c = s.connect();
        for _ in 0..3 {
            c.get_ok();
        }
    }
    stats_when_idle(&s);
    let line = status(&path);
    let page = scrape(at);
    let said = promtool_check(&page);
    assert!(said.trim().is_empty(), "promtool has something to say about the page: {said}");
    let all = samples(&page);
    let even = nobody_passed_over(&line, "the 2-and-2 split");

    let mut accepted_sum = 0.0;
    for id in [1u64, 2] {
        let w = expect_worker(&line, id);
        let cpu = w["cpu"].as_u64().map_or_else(|| "none".to_string(), |c| c.to_string());
        let labels = [("worker", id.to_string()), ("cpu", cpu)];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (family, key) in [
            ("ringmaster_worker_connections_accepted_total", "accepted"),
            ("ringmaster_worker_requests_total", "requests"),
            ("ringmaster_worker_connections_live", "live"),
            ("ringmaster_worker_connections_rejected_total", "rejected"),
            ("ringmaster_worker_restarts_total", "restarts"),
            ("ringmaster_worker_passed_over_total", "passed_over"),
        ] {
            assert_eq!(value(&all, family, &labels), num(&w, key) as f64, "{family} of worker {id}: {line}");
        }
        // Each connection's 3 requests answered by the worker that took it.
        assert_eq!(num(&w, "requests"), 3 * num(&w, "accepted"), "{line}");
        if even {
            assert_eq!(num(&w, "accepted"), 2, "rr deals the 4 connections 2 and 2: {line}");
        }
        accepted_sum += num(&w, "accepted") as f64;
        let mut ready = labels.clone();
        ready.push(("state", "ready"));
        assert_eq!(value(&all, "ringmaster_worker_state", &ready), 1.0);
        let mut draining = labels.clone();
        draining.push(("state", "draining"));
        assert_eq!(value(&all, "ringmaster_worker_state", &draining), 0.0);
        assert_eq!(value(&all, "ringmaster_worker_up", &labels), 1.0);
        assert!(value(&all, "ringmaster_worker_uptime_seconds", &labels) > 0.0);
        assert!(value(&all, "ringmaster_worker_resident_memory_bytes", &labels) > 0.0);
        assert!(value(&all, "ringmaster_worker_cpu_seconds_total", &labels) >= 0.0);
        // rr: what routing sees, once idle: nothing in flight, nothing queued, keeping up.
        for family in [
            "ringmaster_worker_connections_unacknowledged",
            "ringmaster_worker_connections_queued",
            "ringmaster_worker_lagging",
        ] {
            assert_eq!(value(&all, family, &labels), 0.0, "{family} of worker {id}");
        }
        // Its recent ack delay: a few microseconds to milliseconds, fading while idle.
        let delay = value(&all, "ringmaster_worker_ack_delay_seconds", &labels);
        assert!((0.0..1.0).contains(&delay), "ack delay of worker {id}: {delay}");
    }
    let backend = line["backend"].as_str().unwrap();
    let info = [("program", "ringmaster"), ("mode", "rr"), ("backend", backend), ("version", "0.1.0")];
    assert_eq!(value(&all, "ringmaster_info", &info), 1.0, "the binary's program label: ringmaster");
    assert_eq!(value(&all, "ringmaster_workers_configured", &[]), 2.0);
    // In rr the master accepted every connection and dealt each once.
    assert_eq!(accepted_sum, 4.0, "{line}");
    assert_eq!(value(&all, "ringmaster_master_connections_accepted_total", &[]), accepted_sum);
    assert_eq!(value(&all, "ringmaster_master_connections_handed_over_total", &[]), accepted_sum);
    assert_eq!(value(&all, "ringmaster_master_connections_refused_total", &[]), num(&line, "refused") as f64);
    assert_eq!(value(&all, "ringmaster_master_queued_fds", &[]), 0.0, "every batch acknowledged");
    assert!(value(&all, "ringmaster_master_acks_total", &[]) >= 1.0);
    assert!(value(&all, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&all, "process_open_fds", &[]) > 0.0);
    let _ = std::fs::remove_file(&path);
}

/// `--metrics [::1]:0` beside `--bind [::1]:0`: the log names the endpoint
/// in brackets (a URL a browser or Prometheus takes), and it answers there.
#[test]
fn the_endpoint_serves_on_ipv6_loopback() {
    let s = Server::start(&["--bind", "[::1]:0", "--workers", "1", "--metrics", "[::1]:0"]);
    let line = s.wait_for_log(|l| l.starts_with("metrics on http://"), START_TIMEOUT);
    let at = metrics_addr(&s);
    assert!(at.is_ipv6() && line == format!("metrics on http://[::1]:{}/metrics", at.port()), "{line}");
    s.wait_workers_ready(1, START_TIMEOUT);
    s.connect().get_ok();
    let page = scrape(at);
    assert!(page.contains("ringmaster_info"), "{page}");
}

#[test]
fn one_small_request_per_connection_and_errors_for_the_rest() {
    let s = Server::start(&["--workers", "1", "--metrics", "127.0.0.1:0"]);
    let at = metrics_addr(&s);
    let head = send_raw(at, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty(), "HEAD gets no body");
    assert_eq!(send_raw(at, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, 404);
    let post = send_raw(at, b"POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(post.status, 405, "{post:?}");
    assert!(post.head.contains("Allow: GET, HEAD"), "{post:?}");
    assert_eq!(send_raw(at, b"GARBAGE\r\n\r\n").status, 400);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 8192));
    assert_eq!(send_raw(at, &huge).status, 431);
    // The page still comes, and the workers serve as before.
    assert!(scrape(at).contains("ringmaster_worker_requests_total"));
    s.connect().get_ok();
}

#[test]
fn silent_clients_neither_block_a_scrape_nor_stay() {
    let s = Server::start(&["--workers", "1", "--metrics", "127.0.0.1:0"]);
    let at = metrics_addr(&s);
    // More silent connections than the endpoint serves at once (16): the
    // oldest make room, and a scrape is answered at once.
    let silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(at).expect("connect")).collect();
    let page = scrape(at);
    assert!(page.contains("ringmaster_info"), "{page}");
    // A request that never ends is closed after the read deadline (5 s).
    let mut slow = TcpStream::connect(at).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").expect("half a request");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = std::io::Read::read_to_end(&mut slow, &mut rest);
    let waited = started.elapsed();
    assert!(read.is_ok() || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset), "{read:?}");
    assert!(rest.is_empty(), "no answer to half a request: {:?}", String::from_utf8_lossy(&rest));
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(9), "closed after {waited:?}");
    drop(silent);
    s.connect().get_ok();
}

#[test]
fn without_the_flag_there_is_no_endpoint() {
    let s = Server::start(&["--workers", "1"]);
    assert!(!s.log().iter().any(|l| l.starts_with("metrics on")), "{:?}", s.log());
}
