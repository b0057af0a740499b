//! IPv6: every mode serves over `[::1]` (a `GET`, keep-alive, a pipeline),
//! and `[::]` is dual-stack: it takes clients at `[::1]` and, IPv4-mapped,
//! at `127.0.0.1` (the master clears `IPV6_V6ONLY`, as Node does, whatever
//! `net.ipv6.bindv6only` says; the listener's unit test tries that sysctl).
//! The log names IPv6 addresses in brackets, as `--bind` takes them.

use crate::util;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use util::*;

/// Each mode's arguments; `reuseport --steer load` where BPF may be loaded (root).
fn modes() -> Vec<Vec<&'static str>> {
    let mut modes = vec![
        vec!["--mode", "rr"],
        vec!["--mode", "least"],
        vec!["--mode", "shared"],
        vec!["--mode", "reuseport", "--steer", "hash"],
    ];
    if nix::unistd::geteuid().is_root() {
        modes.push(vec!["--mode", "reuseport", "--steer", "load"]);
    } else {
        eprintln!("skipped --steer load: loading BPF programs needs root");
    }
    modes
}

/// A `GET` and its keep-alive follow-up, then 10 pipelined in one write, on one connection to `addr`.
fn get_keepalive_pipeline(addr: SocketAddr) {
    let mut c = Conn::connect(addr);
    c.get_ok();
    c.get_ok();
    c.send(&repeat(GET, 10));
    c.read_ok_answers(&[false; 10]);
}

#[test]
fn every_mode_serves_over_ipv6_loopback() {
    for mode in modes() {
        let mut args = vec!["--bind", "[::1]:0", "--workers", "2", "--no-pin"];
        args.extend_from_slice(&mode);
        let s = Server::start(&args);
        let addr = s.addr();
        assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST, "{mode:?}: {addr}");
        let listening = s.wait_for_log(|l| l.starts_with("listening on "), START_TIMEOUT);
        assert!(listening.starts_with(&format!("listening on [::1]:{} ", addr.port())), "{listening}");
        s.wait_workers_ready(2, START_TIMEOUT);
        for _ in 0..4 {
            get_keepalive_pipeline(addr);
        }
        let stats = util::stats::stats_when_settled(&s, 4, 4 * 12);
        assert_eq!(stats_totals(&stats), (4, 48, 0), "{mode:?}: {stats}");
    }
}

#[test]
fn an_ipv6_wildcard_takes_ipv6_and_ipv4_mapped_clients_in_every_mode() {
    for mode in modes() {
        let mut args = vec!["--bind", "[::]:0", "--workers", "2", "--no-pin"];
        args.extend_from_slice(&mode);
        let s = Server::start(&args);
        let port = s.addr().port();
        assert_eq!(s.addr(), SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), "{mode:?}");
        s.wait_workers_ready(2, START_TIMEOUT);
        for to in [SocketAddr::from((Ipv6Addr::LOCALHOST, port)), SocketAddr::from((Ipv4Addr::LOCALHOST, port))] {
            get_keepalive_pipeline(to);
        }
        let stats = util::stats::stats_when_settled(&s, 2, 2 * 12);
        assert_eq!(stats_totals(&stats), (2, 24, 0), "{mode:?}: {stats}");
    }
}
