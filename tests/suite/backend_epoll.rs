//! `--backend epoll`: the master's loop and its workers' run on epoll and do
//! what they do on io_uring — rr deals connections exactly in turn (while no
//! worker is passed over), a rolling
//! reload under load loses nothing in either mode, and the control socket
//! answers. (`backend_fallback.rs` gets here through a seccomp filter instead.)

use crate::util;

use std::time::Duration;

use util::control::{control_path, ctl, parse_status};
use util::load::{requests_then_close, Load, LOAD_PAUSE};
use util::procs::stop_and_check_no_process_left;
use util::stats::{nobody_passed_over, per_worker, stats_when_settled};
use util::*;

#[test]
fn rr_on_epoll_deals_400_connections_100_to_each_of_4_workers() {
    let s = Server::start(&["--backend", "epoll", "--mode", "rr", "--workers", "4", "--no-pin"]);
    s.wait_workers_ready(4, START_TIMEOUT);
    for _ in 0..400 {
        requests_then_close(s.addr(), 1);
    }
    let stats = stats_when_settled(&s, 400, 400);
    assert_eq!(stats["backend"], "epoll", "{stats}");
    // One request per connection, answered where it was taken; exactly in
    // turn while no worker was passed over (README, "passed_over").
    assert_eq!(per_worker(&stats, "requests"), per_worker(&stats, "accepted"), "{stats}");
    if nobody_passed_over(&stats, "the 100-each split") {
        assert_eq!(per_worker(&stats, "accepted"), vec![100; 4], "{stats}");
    }
    stop_and_check_no_process_left(s);
}

fn reload_on_epoll_loses_nothing(mode: &str) {
    let path = control_path("epoll", mode);
    let _ = std::fs::remove_file(&path);
    let control = path.to_str().expect("UTF-8 path");
    let s = Server::start(&["--backend", "epoll", "--mode", mode, "--workers", "2", "--no-pin", "--control", control]);
    let before = s.wait_workers_ready(2, START_TIMEOUT);
    let load = Load::start(s.addr(), 4, 20_000, Duration::from_secs(20), LOAD_PAUSE);
    load.wait_ok(100, Duration::from_secs(10));

    let (code, out, err) = ctl(&path, &["reload"]);
    assert_eq!((code, out.as_str()), (0, "ok reloading 2 workers"), "{err}");
    let mut last = serde_json::Value::Null;
    let replaced = eventually(Duration::from_secs(15), || {
        last = parse_status(&ctl(&path, &["status"]).1);
        let (now, then) = (last["workers"].as_array().cloned(), before["workers"].as_array().cloned());
        now.zip(then).is_some_and(|(now, then)| {
            now.len() == 2 && now.iter().zip(&then).all(|(n, t)| n["pid"] != t["pid"] && n["state"] == "ready")
        })
    });
    assert!(replaced, "{mode}: reload did not replace both workers: {last}");
    assert_eq!(last["backend"], "epoll", "{last}");
    let answered = load.ok();
    load.wait_ok(answered + 100, Duration::from_secs(10));
    let (ok, failures) = load.finish();
    assert!(failures.is_empty(), "{mode}: {} of {ok} requests failed: {failures:?}", failures.len());
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_reload_on_epoll_under_load_loses_nothing() {
    reload_on_epoll_loses_nothing("rr");
}

#[test]
fn shared_reload_on_epoll_under_load_loses_nothing() {
    reload_on_epoll_loses_nothing("shared");
}

#[test]
fn least_reload_on_epoll_under_load_loses_nothing() {
    reload_on_epoll_loses_nothing("least");
}

#[test]
fn reuseport_reload_on_epoll_under_load_loses_nothing() {
    reload_on_epoll_loses_nothing("reuseport");
}
