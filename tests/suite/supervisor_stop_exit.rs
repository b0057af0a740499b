//! A stop whose workers are all gone before the master's next tick: the
//! master stops listening before it exits, whatever the mode, so that a
//! client that connected after SIGTERM is answered (`503`, or `200` by a
//! worker that took it before its drain) or refused, never reset. Before,
//! the tick that stops listening (every 100 ms) never came when the workers
//! drained faster; the master exited with those clients in the listen queue
//! and the kernel reset them (8 client threads looping across a stop: all 8
//! threads' last connections reset, in 11 of 12 runs over the four modes).

use crate::util;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::procs::stop_and_check_no_process_left;
use util::*;

/// Client threads looping across the stop: each one's connection open when
/// the master exits is one the exit would reset.
const CLIENTS: usize = 4;

/// How long a connect after the signal may wait: a SYN that comes as the
/// master stops listening is dropped, and its retry a second later refused.
const CONNECT_AFTER_STOP: Duration = Duration::from_millis(200);

/// How long the master keeps a refused connection open after its `503`
/// (`refuse.rs`): a request still on its way lands in an open socket.
const REFUSED_LINGER: Duration = Duration::from_millis(200);

/// How one client fared: answered (its status), refused at connect (or its
/// SYN dropped), or neither (what happened), with when it connected.
enum Fared {
    Answered(u16),
    Refused,
    Lost(Instant, String),
}

fn one_client(addr: SocketAddr, connect_within: Duration) -> Fared {
    let stream = match TcpStream::connect_timeout(&addr, connect_within) {
        Ok(stream) => stream,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Fared::Refused,
        Err(e) if e.kind() == io::ErrorKind::TimedOut && connect_within == CONNECT_AFTER_STOP => return Fared::Refused,
        Err(e) => return Fared::Lost(Instant::now(), format!("connect: {e}")),
    };
    let connected = Instant::now();
    if let Err(e) = stream.set_read_timeout(Some(IO_TIMEOUT)) {
        return Fared::Lost(connected, e.to_string());
    }
    let mut r = BufReader::new(stream);
    if let Err(e) = r.get_mut().write_all(GET_CLOSE) {
        return Fared::Lost(connected, format!("write: {e}"));
    }
    match read_response(&mut r) {
        Ok(resp) if resp.status == 200 || resp.status == 503 => Fared::Answered(resp.status),
        Ok(resp) => Fared::Lost(connected, format!("answer {resp:?}")),
        Err(e) => Fared::Lost(connected, format!("read: {e}")),
    }
}

/// Keep-alive connections that keep the workers draining for a second
/// (each had an answer just before the stop), past the master's ticks.
const HELD: usize = 4;

fn clients_across_a_stop_are_answered(mode: &str) {
    clients_across_a_stop(mode, false);
}

/// `held`: the workers drain for a second (their keep-alive connections
/// just used), so the master's ticks look at the listeners meanwhile.
fn clients_across_a_stop(mode: &str, held: bool) {
    let mut s = Server::start(&["--mode", mode, "--workers", "2", "--no-pin"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let mut kept: Vec<Conn> = if held { (0..HELD).map(|_| s.connect()).collect() } else { Vec::new() };
    let (addr, answered, term) = (s.addr(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let refused_503 = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (answered, term, refused_503) = (Arc::clone(&answered), Arc::clone(&term), Arc::clone(&refused_503));
            thread::spawn(move || {
                let mut lost = Vec::new();
                loop {
                    let stopping = term.load(Ordering::Relaxed);
                    match one_client(addr, if stopping { CONNECT_AFTER_STOP } else { IO_TIMEOUT }) {
                        Fared::Answered(status) => {
                            let count = if status == 503 { &refused_503 } else { &answered };
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused after the signal: the master stopped listening, or exited.
                        Fared::Refused if stopping => break,
                        Fared::Refused => lost.push("refused before the stop".to_string()),
                        Fared::Lost(at, what) => lost.push(format!("connected {:?} ago: {what}", at.elapsed())),
                    }
                    if lost.len() > 3 {
                        break;
                    }
                }
                lost
            })
        })
        .collect();
    let flowing = eventually(IO_TIMEOUT, || answered.load(Ordering::Relaxed) >= 20 * CLIENTS as u64);
    assert!(flowing, "{mode}: the clients were not answered before the stop");
    for conn in &mut kept {
        conn.get_ok();
    }
    let from = s.log_len();
    term.store(true, Ordering::Relaxed);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(20));
    let lost: Vec<String> = clients.into_iter().flat_map(|c| c.join().expect("client panicked")).collect();
    let log = s.log()[from..].join("\n");
    eprintln!("{mode}: {} clients answered 503", refused_503.load(Ordering::Relaxed));
    assert_eq!(status.code(), Some(0), "{mode}: master exit status {status}; log:\n{log}");
    assert!(lost.is_empty(), "{mode}: clients neither answered nor refused: {lost:?}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_clients_connecting_as_the_stop_ends_are_answered() {
    clients_across_a_stop_are_answered("rr");
}

#[test]
fn least_clients_connecting_as_the_stop_ends_are_answered() {
    clients_across_a_stop_are_answered("least");
}

#[test]
fn shared_clients_connecting_as_the_stop_ends_are_answered() {
    clients_across_a_stop_are_answered("shared");
}

#[test]
fn reuseport_clients_connecting_as_the_stop_ends_are_answered() {
    clients_across_a_stop_are_answered("reuseport");
}

/// A client whose handshake is under way as the master stops listening: its
/// connect returned before the stop, its last ACK comes after (held back,
/// as a slow client's may be), and it sends its request once nothing listens
/// on the port. The stop lets the handshakes begun complete into the queue
/// before it stops listening, and answers them. Before, the listener stopped
/// listening with the handshake under way and the kernel reset the client
/// when its ACK came (in CI, a client looping across a `reuseport` stop was
/// reset 24 µs after its connect returned, its ACK a moment late).
fn a_handshake_under_way_at_the_stop_is_answered(mode: &str) {
    a_handshake_under_way_at_the_stop_is_answered_on(mode, "127.0.0.1:0");
}

/// As above, the master bound to `bind`; the client connects over IPv4.
fn a_handshake_under_way_at_the_stop_is_answered_on(mode: &str, bind: &str) {
    let mut s = Server::start(&["--bind", bind, "--mode", mode, "--workers", "2", "--no-pin"]);
    s.wait_workers_ready(2, START_TIMEOUT);
    let port = s.addr().port();
    let to = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let stream = util::sockets::connect_holding_the_last_ack(to).expect("a connect");
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    let stopped = eventually(Duration::from_secs(20), || !util::sockets::listening_on(port));
    let mut late = BufReader::new(stream);
    let answer = late.get_mut().write_all(GET_CLOSE).and_then(|()| read_response(&mut late));
    let status = s.wait_exit(Duration::from_secs(20));
    let log = s.log()[from..].join("\n");
    assert!(stopped, "{mode}: port {port} still listened on; log:\n{log}");
    match answer {
        Ok(resp) => assert!(resp.status == 200 || resp.status == 503, "{mode}: answered {resp:?}; log:\n{log}"),
        Err(e) => panic!("{mode}: the client connected before the stop was not answered: {e}; log:\n{log}"),
    }
    assert_eq!(status.code(), Some(0), "{mode}: master exit status {status}; log:\n{log}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_a_handshake_under_way_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered("rr");
}

#[test]
fn least_a_handshake_under_way_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered("least");
}

#[test]
fn shared_a_handshake_under_way_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered("shared");
}

#[test]
fn reuseport_a_handshake_under_way_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered("reuseport");
}

/// An IPv4 client of a dual-stack `[::]` listener: its handshake under way
/// is an IPv6 request socket there (IPv4-mapped), and the stop's count, of
/// the listener's family, waits for it as for any other.
#[test]
fn rr_an_ipv4_handshake_under_way_on_a_dual_stack_listener_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered_on("rr", "[::]:0");
}

#[test]
fn reuseport_an_ipv4_handshake_under_way_on_a_dual_stack_listener_at_the_stop_is_answered() {
    a_handshake_under_way_at_the_stop_is_answered_on("reuseport", "[::]:0");
}

/// `reuseport` with the workers draining past the master's ticks: a worker
/// takes what waits on its listener as its drain begins and lets go of it,
/// and the master's copy keeps it listening until the master looks. Before
/// 2026-12-06 the master then closed its copy, the last, and the kernel
/// reset what had queued there meanwhile (clients looping across a stop: 3
/// resets in 8 stops of 9); now it closes the queue to newcomers at that
/// look and answers what is left (`503`) at the next one.
#[test]
fn reuseport_clients_connecting_while_the_workers_drain_are_answered() {
    clients_across_a_stop("reuseport", true);
}

#[test]
fn rr_clients_connecting_while_the_workers_drain_are_answered() {
    clients_across_a_stop("rr", true);
}

/// A client answered `503` by the stop's end (its worker gone before the
/// tick) may still be sending: the master lingers on its refusal as it does
/// while serving, rather than exiting at once and resetting what comes next.
/// Before, the exit closed the refusal at once: a client writing after its
/// `503` got `EPIPE` (2 stops of 5). The worker is stopped, then killed,
/// within its heartbeat's 500 ms, so that the stop's end (not the tick)
/// answers the queue; slower than that, the tick answers it, and the test
/// shows nothing either way. The linger is measured from the kill, which
/// comes before the refusal: a slow machine only lengthens it.
#[test]
fn a_client_refused_as_the_master_exits_may_still_send() {
    let mut s = Server::start(&["--mode", "rr", "--workers", "1", "--no-pin"]);
    s.wait_workers_ready(1, START_TIMEOUT);
    let worker = *s.logged_worker_pids().first().expect("the worker's pid is logged");
    let stopped = util::procs::stop(worker);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.contains("SIGTERM received"), IO_TIMEOUT);
    // The master no longer accepts: this one waits in the listen queue.
    let mut late = BufReader::new(connect(s.addr()));
    let killed = Instant::now();
    if let Err(e) = stopped.signal(libc::SIGKILL) {
        panic!("SIGKILL to the worker (pid {worker}): {e}");
    }
    let resp = read_response(&mut late).expect("the queued client is answered");
    assert_eq!(resp.status, 503);
    // The request it was still sending: an open socket takes it.
    let sent = late.get_mut().write_all(b"GET / HTTP/1.1\r\n").and_then(|()| late.get_mut().write_all(b"\r\n"));
    let exited = eventually(Duration::from_secs(20), || !s.is_running());
    let lived = killed.elapsed();
    let status = s.wait_exit(Duration::from_secs(1));
    let log = s.log()[from..].join("\n");
    assert!(exited, "the master did not exit; log:\n{log}");
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{log}");
    assert!(lived >= REFUSED_LINGER, "the master exited {lived:?} after the queue's last worker went; log:\n{log}");
    assert!(sent.is_ok(), "the request after the 503 met a reset: {sent:?}; log:\n{log}");
    assert!(late.get_ref().take_error().ok().flatten().is_none(), "the refused client was reset; log:\n{log}");
    stop_and_check_no_process_left(s);
}
