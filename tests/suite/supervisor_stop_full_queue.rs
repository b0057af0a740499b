//! A stop with the listen queue full. The kernel queues `--backlog` and
//! one connections: the stop answers them all (`503`). Before, it answered
//! `--backlog` of them, and shut the listener with the last one queued,
//! which was reset (5 stops of 5 in every mode, on both backends).
//!
//! With a handshake under way too: the kernel drops its last ACK while the
//! queue has no room (its request socket stays in `SYN-RECV`, its client's
//! connect has returned), so it cannot complete into the queue until room
//! is made. The stop answers what waits while it waits for the handshakes
//! begun, so that room is made, the held one completes as its client's
//! next packet comes, and is answered too. Before, the stop waited the
//! whole 500 ms with the queue full, answered it, and shut the listener:
//! the held client, answered SYN-ACK, was reset as its request came (5
//! stops of 5 in every mode, on both backends).
//!
//! The stop cannot stop listening while the only worker is stopped
//! (SIGSTOP) for less than its heartbeat's 500 ms (`reuseport`: its
//! listener is shut once it has stood still for 2 s of the stop), nor
//! while the master is stopped: the queue is filled meanwhile, after the
//! master took the stop (`rr`, `least`: it no longer accepts).

use crate::util;

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use util::procs::stop_and_check_no_process_left;
use util::sockets::{connect_holding_the_last_ack, handshakes_on_port, queued_on_port};
use util::still_at_stop::{stop_with_the_worker_and_master_still, StillAtStop};
use util::*;

/// The listen backlog: the kernel's queue holds one more.
const BACKLOG: usize = 2;

/// `held`: a client whose handshake is under way as the queue fills.
fn a_full_queue_at_the_stop_is_answered(mode: &str, held: bool) {
    let backlog = BACKLOG.to_string();
    // The stop's wait for the held handshake stretched from 500 ms to 4 s
    // (a fault for tests): the held client's request must come while it
    // waits, however late this thread runs once room is made.
    let args = ["--mode", mode, "--workers", "1", "--no-pin", "--backlog", &backlog];
    let mut s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "handshakes-wait:4000")]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let StillAtStop { worker: worker_stopped, master, from } = stop_with_the_worker_and_master_still(&s);

    let port = s.addr().port();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let held = held.then(|| connect_holding_the_last_ack(to).expect("the held client's connect"));
    let mut queued: Vec<Conn> = (0..=BACKLOG)
        .map(|i| {
            let stream = TcpStream::connect_timeout(&to, IO_TIMEOUT)
                .unwrap_or_else(|e| panic!("{mode}: client {i} filling the queue: {e}"));
            let mut c = Conn { r: BufReader::new(stream) };
            c.send(GET_CLOSE);
            c
        })
        .collect();
    let full = Some(BACKLOG as u64 + 1);
    let filled = eventually(IO_TIMEOUT, || queued_on_port(port) == full);
    let under_way = handshakes_on_port(port);
    assert!(filled, "{mode}: the queue holds {:?}, not {full:?}", queued_on_port(port));
    assert_eq!(under_way, usize::from(held.is_some()), "{mode}: handshakes under way");

    drop(master);
    let mut unanswered = Vec::new();
    if let Some(held) = held {
        // Room made by the stop's answers, or the listener shut: the held
        // client's request goes then, as a retransmission would.
        let roomy = eventually(Duration::from_secs(20), || queued_on_port(port) != full);
        let mut late = BufReader::new(held);
        match late.get_mut().write_all(GET_CLOSE).and_then(|()| read_response(&mut late)) {
            Ok(resp) if roomy && resp.status == 503 => {}
            other => unanswered.push(format!("the held client (room made: {roomy}): {:?}", other.map(|r| r.status))),
        }
    }
    for (i, c) in queued.iter_mut().enumerate() {
        match c.try_read() {
            Ok(resp) if resp.status == 503 => {}
            other => unanswered.push(format!("queued client {i}: {:?}", other.map(|r| r.status))),
        }
    }
    drop(worker_stopped);
    let status = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert!(unanswered.is_empty(), "{mode}: not answered 503: {unanswered:?}; log:\n{log}");
    assert_eq!(status.code(), Some(0), "{mode}: master exit status {status}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("rr", false);
}

#[test]
fn least_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("least", false);
}

#[test]
fn shared_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("shared", false);
}

#[test]
fn reuseport_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("reuseport", false);
}

#[test]
fn rr_a_handshake_held_by_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("rr", true);
}

#[test]
fn least_a_handshake_held_by_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("least", true);
}

#[test]
fn shared_a_handshake_held_by_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("shared", true);
}

#[test]
fn reuseport_a_handshake_held_by_a_full_queue_at_the_stop_is_answered() {
    a_full_queue_at_the_stop_is_answered("reuseport", true);
}
