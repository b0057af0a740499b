//! A stop in `--mode reuseport` with one worker stopped (SIGSTOP): once the
//! healthy worker has closed its listener, the stopped worker's is the only
//! one left in the kernel's group and gets every new connection. The master
//! answers what waits there (`503`) and shuts it, so that a client arriving
//! late is answered or refused within a moment, not left waiting until the
//! stopped worker is killed at `--shutdown-timeout` and reset then (seen:
//! 10 late clients reset 4 s after they connected, at a 5 s timeout). The
//! healthy worker still serves what it was sent before the stop.

use crate::util;

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::hashed::{answers, clients_until_queued};
use util::procs::{stop_and_check_no_process_left, stop_between_turns};
use util::sockets::{socket_inode, unread_by_server, wait_queued};
use util::stats::{expect_worker, num, per_worker};
use util::*;

/// Long beside anything the stop does, short beside the test's patience:
/// without the fix a late client waited this long, then was reset.
const SHUTDOWN_TIMEOUT: &str = "30";

/// How a late client fared.
fn late_client(s: &Server) -> Result<String, String> {
    let stream = match TcpStream::connect_timeout(&s.addr(), IO_TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok("refused".into()),
        Err(e) => return Err(format!("connect: {e}")),
        Ok(stream) => stream,
    };
    let mut late = Conn { r: BufReader::new(stream) };
    late.send(GET_CLOSE);
    // Past the shutdown timeout: a client left waiting is reset by the kill.
    late.stream().set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    match late.try_read() {
        Ok(resp) if resp.status == 503 || resp.status == 200 => Ok(format!("answered {}", resp.status)),
        Ok(resp) => Err(format!("unexpected answer {resp:?}")),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

#[test]
fn reuseport_stop_with_a_stopped_worker_answers_late_clients_at_once() {
    let args = ["--mode", "reuseport", "--workers", "2", "--no-pin", "--shutdown-timeout", SHUTDOWN_TIMEOUT];
    let mut s = Server::start(&args);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    // A keep-alive client on one worker; the other one is stopped.
    let mut c = s.connect();
    c.get_ok();
    let mut live = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            live = per_worker(&s.stats(), "live");
            live.iter().sum::<u64>() == 1
        }),
        "one worker holds the client: {live:?}"
    );
    let victim_id = if live[0] == 1 { 2 } else { 1 };
    let victim = num(&expect_worker(&ready, victim_id), "pid") as u32;
    let (cont, _) = stop_between_turns(victim);

    // A request begun before the stop, on the healthy worker.
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello");
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("stopped listening"), Duration::from_secs(10));

    let late = Instant::now();
    let fared: Vec<(Result<String, String>, Duration)> = (0..4)
        .map(|_| {
            let at = Instant::now();
            (late_client(&s), at.elapsed())
        })
        .collect();
    let took = late.elapsed();
    let log = s.log()[from..].join("\n");
    eprintln!("late clients: {fared:?} in {took:?}");
    assert!(fared.iter().all(|(f, _)| f.is_ok()), "a late client was left without an answer: {fared:?}; log:\n{log}");
    assert!(!log.contains("shutdown timeout"), "answered only once the stopped worker was killed: {log}");

    c.send(b"world");
    let resp = c.read();
    check_ok(&resp);
    assert!(resp.has_connection("close"), "an answer during the drain closes the connection: {resp:?}");
    c.expect_closed();

    // Continued, the stopped worker drains (its listener shut) and exits.
    drop(cont);
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{}", s.log().join("\n"));
    let exits: Vec<String> = s.log()[from..].iter().filter(|l| l.contains(") exited with code ")).cloned().collect();
    assert!(
        exits.len() == 2 && exits.iter().all(|l| l.ends_with("code 0")),
        "both workers drain and exit 0: {exits:?}"
    );
    stop_and_check_no_process_left(s);
}

/// A worker stopped (SIGSTOP) well before a stop in `--mode reuseport
/// --steer hash`: what the kernel's hash queued on its listener goes, as
/// the stop begins, to the worker that runs, which serves it before its
/// drain. Before, it waited for the stop's 2 s on a stuck worker and got
/// `503` (seen: every one of those clients, the other worker had room). A
/// one-second drain delay lets the master see the stopped worker's
/// heartbeat stale (past 500 ms) as the stop proper begins.
#[test]
fn reuseport_stop_hands_a_stopped_workers_queue_to_the_other() {
    let args = ["--mode", "reuseport", "--steer", "hash", "--workers", "2", "--no-pin", "--drain-delay", "1"];
    let mut s = Server::start(&args);
    let ready = s.wait_workers_ready(2, START_TIMEOUT);
    let victim = num(&expect_worker(&ready, 2), "pid") as u32;
    let listener = socket_inode(victim, 5).expect("worker 2's listener");
    let (cont, _) = stop_between_turns(victim);

    // Clients until 3 wait on the stopped worker's listener; worker 1
    // answers the others meanwhile.
    let mut clients = clients_until_queued(&s, listener, 3);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    let answers = answers(&mut clients);
    let log = s.log()[from..].join("\n");
    assert!(answers.iter().all(|a| a == "200"), "clients connected before SIGTERM: {answers:?}; log:\n{log}");
    // The line is written before the hand-off's sends, but the test's log
    // reader may not have read it yet when the answers arrive.
    s.wait_for_log_from(
        from,
        |l| l.contains("connections taken from the listener of worker 2"),
        Duration::from_secs(10),
    );

    drop(cont);
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{}", s.log().join("\n"));
    stop_and_check_no_process_left(s);
}

/// A worker in a long turn when the stop begins (a slow handler: its loop
/// stands still) ends it within the 2 s the master gives a still worker,
/// counted from the stop, and takes what waits on its listener as its drain
/// begins: those clients, who wrote their requests before SIGTERM, are
/// served. Until 2026-12-05 the 2 s counted from the worker's last
/// heartbeat, before the stop too: the master shut its listener and
/// answered them `503` while the worker was about to serve them (stress
/// run: `--steer hash`, `slow:2:100000` under 48 churning clients, 18 to 41
/// requests written 1.5 s before SIGTERM answered `503` 0.6 s after it,
/// with `--shutdown-timeout 10`). A one-second drain delay puts the turn's
/// start a second before the stop proper, whatever the machine's pace.
#[test]
fn reuseport_stop_leaves_its_queue_to_a_worker_busy_in_a_long_turn() {
    let args = ["--mode", "reuseport", "--steer", "hash", "--workers", "1", "--no-pin", "--drain-delay", "1"];
    // Each request holds the loop for 2.5 s: past the 2 s before the stop
    // proper begins plus the delay's second, within 2 s after it.
    let mut s = Server::start_with_env(&args, &[("RINGMASTER_FAULT", "slow:1:2500000")]);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let pid = num(&expect_worker(&ready, 1), "pid") as u32;
    let listener = socket_inode(pid, 5).expect("worker 1's listener");

    // The worker reads this request and its handler runs: its loop stands still.
    let mut first = s.connect();
    first.send(GET_CLOSE);
    let client = first.stream().local_addr().map(|a| a.port()).expect("client port");
    let read = eventually(IO_TIMEOUT, || unread_by_server(s.addr().port(), client) == Some(0));
    assert!(read, "the worker did not read the first request");
    // This one waits on its listener meanwhile, its request written before
    // the stop. (One only: a second would wait for the handler of the first
    // to run 2.5 s more, a turn past the 2 s after the stop, and get `503`:
    // the price README states for a worker that stands still that long.)
    let mut waiting = s.connect();
    waiting.send(GET_CLOSE);
    assert_eq!(wait_queued(listener, 1), 1, "a client waits on the busy worker's listener");

    let from = s.log_len();
    s.signal(libc::SIGTERM);
    let mut answers = Vec::new();
    for c in [&mut first, &mut waiting] {
        // Each handler takes 2.5 s; the second client waits for both.
        c.stream().set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        answers.push(match c.try_read() {
            Ok(resp) => resp.status.to_string(),
            Err(e) => format!("no answer ({e})"),
        });
    }
    let log = s.log()[from..].join("\n");
    assert_eq!(answers, ["200", "200"], "requests written before SIGTERM; log:\n{log}");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{}", s.log().join("\n"));
}
