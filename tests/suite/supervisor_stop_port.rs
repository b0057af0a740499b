//! `--bind HOST:0`: the port the kernel picked stays the master's through
//! a stop's drain, once it has stopped listening. Picked for the listener
//! itself, the port was not locked to it, and the shut at the stop
//! (`SHUT_RD`) gave it back to the kernel: with no connection left on it,
//! another program bound it during the drain (every stop, in every mode
//! but `reuseport`, whose anchor holds the port). The drain is held open
//! by the only worker, stopped (`SIGSTOP`): the stop stops listening once
//! its heartbeat is stale, and it drains once it runs again.

use crate::util;

use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
use util::procs::{stop, stop_and_check_no_process_left};
use util::stats::{expect_worker, num};
use util::*;

fn the_port_stays_the_masters_through_the_drain(mode: &str) {
    let args = ["--mode", mode, "--workers", "1", "--no-pin", "--shutdown-timeout", "10"];
    let mut s = Server::start(&args);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&expect_worker(&ready, 1), "pid") as u32;
    // The suite's server binds 127.0.0.1:0.
    let local = s.addr();
    let stopped = stop(pid);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("stopped listening"), Duration::from_secs(10));

    // As a program that does not set `SO_REUSEADDR` binds.
    let other = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("a socket");
    let taken = socket::bind(other.as_raw_fd(), &SockaddrStorage::from(local));
    drop(other);

    drop(stopped);
    let exit = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert_eq!(
        taken,
        Err(nix::Error::EADDRINUSE),
        "{mode}: another socket bound {local} during the drain; log:\n{log}"
    );
    assert_eq!(exit.code(), Some(0), "{mode}: master exit status {exit}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_the_port_stays_the_masters_through_the_drain() {
    the_port_stays_the_masters_through_the_drain("rr");
}

#[test]
fn shared_the_port_stays_the_masters_through_the_drain() {
    the_port_stays_the_masters_through_the_drain("shared");
}
