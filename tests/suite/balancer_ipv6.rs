//! IPv6: every mode serves over `[::1]` (a `GET`, keep-alive, a pipeline),
//! and `[::]` is dual-stack: it takes clients at `[::1]` and, IPv4-mapped,
//! at `127.0.0.1` (the master clears `IPV6_V6ONLY`, as Node does, whatever
//! `net.ipv6.bindv6only` says; the listener's unit test tries that sysctl).
//! The log names IPv6 addresses in brackets, as `--bind` takes them. A
//! link-local address with its interface (in a network namespace the test
//! makes) serves in every mode.

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

/// Runs `f` on a thread in the network namespace of process `pid`: the
/// thread alone joins it (`setns`), and ends with `f`.
fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("the master's network namespace");
    std::thread::spawn(move || {
        // SAFETY: setns takes an open namespace file and no pointers; with
        // CLONE_NEWNET it moves this thread alone, which ends with `f`.
        let joined = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(joined, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the client thread in the master's namespace")
}

/// A link-local address with its interface named (`[fe80::1%lo]`, in a
/// network namespace the test makes, where `lo` has `fe80::1`) serves in
/// every mode. Until 2026-12-07 `reuseport` dropped the interface (the
/// scope id) between its anchor and the slot listeners, whose bind then
/// failed: `cannot start a worker: ... Invalid argument`.
#[test]
fn a_link_local_address_with_its_interface_serves_in_every_mode() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: a network namespace of its own needs root");
        return;
    }
    // unshare and sh exec: the master keeps the child's pid.
    let setup = r#"ip link set lo up && ip addr add fe80::1/64 dev lo nodad && exec "$0" "$@""#;
    let wrapper = ["unshare", "--net", "sh", "-c", setup];
    for mode in modes() {
        let mut args = vec!["--bind", "[fe80::1%lo]:0", "--workers", "2", "--no-pin"];
        args.extend_from_slice(&mode);
        let s = Server::start_under(&wrapper, &args);
        let SocketAddr::V6(addr) = s.addr() else { panic!("{mode:?}: {}", s.addr()) };
        assert_eq!((addr.ip().segments()[0], addr.scope_id()), (0xfe80, 1), "{mode:?}: lo is interface 1: {addr}");
        s.wait_workers_ready(2, START_TIMEOUT);
        in_netns_of(s.pid(), move || get_keepalive_pipeline(SocketAddr::V6(addr)));
    }
}
