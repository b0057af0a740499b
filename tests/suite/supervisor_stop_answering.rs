//! The master's loop turns while a stop answers its listen queue and waits
//! for the handshakes under way there to complete (at most 500 ms), before
//! it shuts the listener: the control socket and the metrics endpoint are
//! answered meanwhile. Before, the wait was a sleep loop in the master,
//! and with a handshake that never completes nothing was answered until
//! the listener had been shut, the whole 500 ms later (every stop, in
//! every mode, on both backends).
//!
//! The order is the kernel's and the master's, not a timing (but for the
//! wait's deadline, stretched here to 4 s, `handshakes-wait`): the client
//! queued before the stop is answered `503` in the wait's first round,
//! and the held handshake never completes, so from that `503` until the
//! listener is shut the stop waits. The requests go then; their answers
//! must come while the master's listener still listens. As in
//! `supervisor_stop_full_queue.rs`, the only worker is stopped (SIGSTOP)
//! so that the stop stops listening only once its heartbeat is stale, and
//! the master is stopped while the client queues.

use crate::util;

use std::io::BufReader;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use util::control::{control_path, Control};
use util::ops::{metrics_addr, send_raw};
use util::procs::stop_and_check_no_process_left;
use util::sockets::{connect_never_completing, handshakes_on_port, listening_on, queued_on_port};
use util::still_at_stop::{stop_with_the_worker_and_master_still, StillAtStop};
use util::*;

/// `second_sigint`: a second `SIGINT` during the wait too, which kills the
/// workers at once (logged before the listener is shut).
fn the_loop_answers_while_the_stop_waits_for_a_handshake(mode: &str, second_sigint: bool) {
    let path = control_path("stop-answering", &format!("{mode}-{second_sigint}"));
    let control = path.to_str().expect("a UTF-8 path");
    let args = ["--mode", mode, "--workers", "1", "--no-pin", "--control", control, "--metrics", "127.0.0.1:0"];
    // The wait is stretched from 500 ms to 4 s (a fault for tests): the
    // requests below go out while it lasts however late this thread runs
    // (with 500 ms, once in a CI run beside a build, the listener was shut
    // before the second SIGINT went).
    let mut s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "handshakes-wait:4000")]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let metrics = metrics_addr(&s);
    let StillAtStop { worker: worker_stopped, master, from } = stop_with_the_worker_and_master_still(&s);

    let port = s.addr().port();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let held = connect_never_completing(to).expect("the held client's connect");
    let stream = TcpStream::connect_timeout(&to, IO_TIMEOUT).unwrap_or_else(|e| panic!("{mode}: a queued client: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("a read timeout");
    let mut queued = Conn { r: BufReader::new(stream) };
    queued.send(GET_CLOSE);
    let in_place = eventually(IO_TIMEOUT, || queued_on_port(port) == Some(1) && handshakes_on_port(port) == 1);
    let (waiting, under_way) = (queued_on_port(port), handshakes_on_port(port));
    assert!(in_place, "{mode}: queued {waiting:?} (not 1), handshakes under way {under_way} (not 1)");

    drop(master);
    // Answered in the wait's first round: the stop waits from now on.
    let first = queued.try_read().map(|r| r.status);
    let status = Control::connect(&path).command("status");
    let scraped = send_raw(metrics, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").status;
    if second_sigint {
        s.signal(libc::SIGINT);
        s.wait_for_log_from(from, |l| l.contains("second SIGINT"), IO_TIMEOUT);
    }
    let (listening, under_way) = (listening_on(port), handshakes_on_port(port));

    drop(held);
    drop(worker_stopped);
    let exit = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert_eq!(first.ok(), Some(503), "{mode}: the queued client; log:\n{log}");
    assert!(status.starts_with('{'), "{mode}: status reply {status:?}");
    assert_eq!(scraped, 200, "{mode}: the scrape");
    assert!(
        listening && under_way == 1,
        "{mode}: the control socket and the metrics were answered only once the listener was shut \
         (listening: {listening}, handshakes under way: {under_way}); log:\n{log}"
    );
    // `reuseport`: the first look says it stops listening; the stuck
    // worker's listener is shut 2 s into the stop.
    let shut = log.find(if mode == "reuseport" { "listener shut" } else { "stopped listening" });
    assert!(shut.is_some(), "{mode}: the listener was shut; log:\n{log}");
    if second_sigint {
        let killed = log.find("second SIGINT: killing workers now");
        assert!(killed < shut, "{mode}: the second SIGINT was taken during the wait; log:\n{log}");
    }
    assert_eq!(exit.code(), Some(0), "{mode}: master exit status {exit}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_the_loop_answers_while_the_stop_waits_for_a_handshake() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("rr", false);
}

#[test]
fn least_the_loop_answers_while_the_stop_waits_for_a_handshake() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("least", false);
}

#[test]
fn shared_the_loop_answers_while_the_stop_waits_for_a_handshake() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("shared", false);
}

#[test]
fn reuseport_the_loop_answers_while_the_stop_waits_for_a_handshake() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("reuseport", false);
}

#[test]
fn rr_a_second_sigint_while_the_stop_waits_for_a_handshake_kills_the_workers() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("rr", true);
}

#[test]
fn reuseport_a_second_sigint_while_the_stop_waits_for_a_handshake_kills_the_workers() {
    the_loop_answers_while_the_stop_waits_for_a_handshake("reuseport", true);
}
