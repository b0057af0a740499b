//! The master's loop turns while a stop waits for the packets in flight
//! (an RCU grace period, 5 to 20 ms here, some tens under load) before it
//! answers its listen queues and again before it shuts its listeners: the
//! control socket is answered meanwhile. Before, each wait was made on the
//! loop, which stood still for it: no reply until the listeners were shut.
//!
//! The same for the wait a scaled-away `reuseport` worker's set-aside
//! listener's let-go makes: its listener is shut only after it.
//!
//! The waits are stretched to 3 s each (a fault for tests,
//! `in-flight-wait`), and the master says when one begins: the `status`
//! asked then must be answered while the listener still listens, before
//! the first wait (and the second, and the shut after it) is over.

use crate::util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use util::control::{control_path, Control};
use util::procs::stop_and_check_no_process_left;
use util::sockets::{listeners_on_port, listening_on};
use util::*;

const WAIT_BEGINS: &str = "in-flight-wait: a wait for the packets in flight begins";

/// Asks `status` on a new connection to `path`: the reply (empty if none
/// came within 5 s) and what the read said.
fn ask_status(path: &std::path::Path) -> (String, std::io::Result<usize>) {
    let client = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    let mut client = BufReader::new(client);
    client.get_mut().write_all(b"status\n").expect("the status command");
    let mut reply = String::new();
    let read = client.read_line(&mut reply);
    (reply, read)
}

fn the_loop_answers_while_a_stop_waits_for_the_packets_in_flight(mode: &str) {
    let path = control_path("stop-in-flight", mode);
    let control = path.to_str().expect("a UTF-8 path");
    let args = ["--mode", mode, "--workers", "1", "--no-pin", "--control", control];
    let mut s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "in-flight-wait:3000")]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let port = s.addr().port();
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.contains(WAIT_BEGINS), Duration::from_secs(10));

    // Both waits and the shut take 6 s: a reply after them comes too late.
    let (reply, read) = ask_status(&path);
    let listening = listening_on(port);

    let exit = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert!(read.is_ok() && reply.starts_with('{'), "{mode}: status reply {reply:?} ({read:?}); log:\n{log}");
    assert!(listening, "{mode}: the control socket was answered only once the listener was shut; log:\n{log}");
    assert_eq!(exit.code(), Some(0), "{mode}: master exit status {exit}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_the_loop_answers_while_a_stop_waits_for_the_packets_in_flight() {
    the_loop_answers_while_a_stop_waits_for_the_packets_in_flight("rr");
}

#[test]
fn least_the_loop_answers_while_a_stop_waits_for_the_packets_in_flight() {
    the_loop_answers_while_a_stop_waits_for_the_packets_in_flight("least");
}

#[test]
fn shared_the_loop_answers_while_a_stop_waits_for_the_packets_in_flight() {
    the_loop_answers_while_a_stop_waits_for_the_packets_in_flight("shared");
}

#[test]
fn reuseport_the_loop_answers_while_a_stop_waits_for_the_packets_in_flight() {
    the_loop_answers_while_a_stop_waits_for_the_packets_in_flight("reuseport");
}

/// `reuseport`, scaled from 2 workers to 1: worker 2's listener is set
/// aside, and let go of once worker 2 drains, after a wait for the packets
/// in flight; until then it still listens (filtered), with worker 1's.
#[test]
fn reuseport_the_loop_answers_while_a_set_aside_listener_waits_for_the_packets_in_flight() {
    let path = control_path("set-aside-in-flight", "reuseport");
    let control = path.to_str().expect("a UTF-8 path");
    let args = ["--mode", "reuseport", "--workers", "2", "--no-pin", "--control", control];
    let mut s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "in-flight-wait:3000")]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let port = s.addr().port();
    assert_eq!(listeners_on_port(port), 2, "a listener per worker");
    let from = s.log_len();
    let scaled = Control::connect(&path).command("scale 1");
    s.wait_for_log_from(from, |l| l.contains(WAIT_BEGINS), Duration::from_secs(10));

    // The let-go ends 3 s on: a reply after it comes too late.
    let (reply, read) = ask_status(&path);
    let listeners = listeners_on_port(port);
    let let_go = eventually(Duration::from_secs(10), || listeners_on_port(port) == 1);

    s.signal(libc::SIGTERM);
    let exit = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert_eq!(scaled, "ok scaling to 1 worker");
    assert!(read.is_ok() && reply.starts_with('{'), "status reply {reply:?} ({read:?}); log:\n{log}");
    assert_eq!(
        listeners, 2,
        "the control socket was answered only once the set-aside listener was let go of; log:\n{log}"
    );
    assert!(let_go, "the set-aside listener was let go of; log:\n{log}");
    assert_eq!(exit.code(), Some(0), "master exit status {exit}; log:\n{log}");
    stop_and_check_no_process_left(s);
}
