//! Supervisor (issue 5): graceful stop.
//!
//! - SIGTERM while clients run (both modes): every request sent before the
//!   signal gets its response (pipelined keep-alive batches in flight and
//!   one-request connections), the master exits 0 with the final stats line,
//!   and no process is left.
//! - A deep pipeline held back by a slow reader (both modes): requests sent
//!   before SIGTERM are all answered. Run on each worker driver by name.
//! - A request held half-sent at SIGTERM (SIGQUIT in `shared` mode) is finished
//!   and answered when the rest arrives.
//! - A keep-alive client that used its connection just before SIGTERM gets
//!   the answer to its next request, sent after the drain's short grace.
//! - A client that connects while a stop drains is refused at once, or
//!   answered if it was already queued (in every mode).
//! - A straggler is killed after `--shutdown-timeout`; a second SIGINT kills
//!   the workers at once; either way the master exits 0.

use crate::util;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use util::load::{close_request_with, Unanswered, CLIENT_TIMEOUT};
use util::procs::stop_and_check_no_process_left;
use util::stats::{stopping, wait_one_connection_held_while_draining};
use util::*;

// --- local helpers ------------------------------------------------------------------------

/// Checks the master's exit after a stop: code 0, one final stats line on
/// stdout in which every worker has exited, every worker process exited.
fn check_clean_exit(s: &mut Server, status: ExitStatus, workers: usize) {
    assert_eq!(status.code(), Some(0), "master exit status {status}; log:\n{}", s.log().join("\n"));
    let line = s.next_stdout_line(IO_TIMEOUT).expect("final stats line on stdout");
    let fin: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("final line {line:?}: {e}"));
    let ws = fin["workers"].as_array().unwrap_or_else(|| panic!("no workers in {fin}"));
    assert_eq!(ws.len(), workers, "{fin}");
    for w in ws {
        assert_eq!(w["state"], "exited", "{fin}");
        assert_eq!(w["live"], 0, "{fin}");
    }
}

/// Clients that run until the server goes away (or `limit`): `close_clients`
/// threads with one `Connection: close` request per connection, and
/// `pipelined` threads each on one keep-alive connection, writing batches of
/// `batch` requests in one write and then reading the answers.
struct StopLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    handles: Vec<JoinHandle<Vec<Unanswered>>>,
}

impl StopLoad {
    fn start(addr: SocketAddr, close_clients: usize, pipelined: usize, batch: usize, limit: Duration) -> StopLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let batches = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + limit;
        let mut handles = Vec::new();
        for _ in 0..close_clients {
            let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
            handles.push(thread::spawn(move || {
                let mut lost = Vec::new();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match close_request_with(addr, CLIENT_TIMEOUT, false) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(u) => {
                            let refused = u.sent.is_none();
                            lost.push(u);
                            if refused {
                                break; // the listener is gone: the server has stopped
                            }
                        }
                    }
                    thread::sleep(Duration::from_micros(300));
                }
                lost
            }));
        }
        for _ in 0..pipelined {
            let (stop, ok, batches) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&batches));
            handles.push(thread::spawn(move || {
                let mut lost = Vec::new();
                let mut c = Conn::connect(addr);
                let burst = repeat(GET, batch);
                'run: while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if let Err(e) = c.try_send(&burst) {
                        lost.push(Unanswered { sent: None, what: format!("batch write: {e}") });
                        break;
                    }
                    let sent = Some(Instant::now());
                    for i in 0..batch {
                        match c.try_read() {
                            Ok(resp) if resp.status == 200 && resp.body == BODY => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if resp.has_connection("close") && i + 1 < batch {
                                    let what = format!("Connection: close on answer {} of a batch of {batch}", i + 1);
                                    lost.push(Unanswered { sent, what });
                                    break 'run;
                                }
                            }
                            Ok(resp) => {
                                lost.push(Unanswered { sent, what: format!("answer {i}: {resp:?}") });
                                break 'run;
                            }
                            Err(e) => {
                                let what = format!("answer {} of {batch}: {e}", i + 1);
                                lost.push(Unanswered { sent, what });
                                break 'run;
                            }
                        }
                    }
                    batches.fetch_add(1, Ordering::Relaxed);
                }
                lost
            }));
        }
        StopLoad { stop, ok, batches, handles }
    }

    fn finish(mut self) -> (u64, Vec<Unanswered>) {
        self.stop.store(true, Ordering::Relaxed);
        let lost = self.handles.drain(..).flat_map(|h| h.join().expect("client panicked")).collect();
        (self.ok.load(Ordering::Relaxed), lost)
    }
}

impl Drop for StopLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Does `s` have room for more bytes now (poll(2) POLLOUT, not waiting)?
fn writable_now(s: &TcpStream) -> bool {
    let mut pfd = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll reads and writes the one pollfd passed, which lives in this frame.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r == 1 && pfd.revents & libc::POLLOUT != 0
}

/// Waits (at most 5 s) until every worker in the stats has begun to drain
/// (state `draining`) or has finished (`stopped`, `exited`); returns the stats.
fn wait_draining(s: &Server) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let draining = eventually(Duration::from_secs(5), || {
        last = s.stats();
        last["workers"].as_array().unwrap().iter().all(stopping)
    });
    assert!(draining, "workers not all draining after the stop signal: {last}");
    last
}

/// Sends `sig` and notes the instant just before: requests written before it
/// were sent before the signal.
fn signal_at(s: &Server, sig: i32) -> Instant {
    let at = Instant::now();
    s.signal(sig);
    at
}

// --- SIGTERM under load ---------------------------------------------------------------------

fn sigterm_under_load(mode: &str) {
    let mut s = Server::start(&["--mode", mode, "--workers", "2"]);
    let load = StopLoad::start(s.addr(), 2, 3, 32, Duration::from_secs(15));
    assert!(
        eventually(Duration::from_secs(10), || load.ok.load(Ordering::Relaxed) >= 2000
            && load.batches.load(Ordering::Relaxed) >= 30),
        "load did not get going"
    );
    let from = s.log_len();
    let term = signal_at(&s, libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(10));
    let exited_after = term.elapsed();
    let (ok, lost) = load.finish();

    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 2 workers", Duration::from_secs(1));
    let log = s.log();
    let exits: Vec<&String> = log[from..].iter().filter(|l| l.contains(") exited with code ")).collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert!(exits.iter().all(|l| l.ends_with("exited with code 0")), "workers drain and exit 0: {exits:?}");
    check_clean_exit(&mut s, status, 2);

    let before: Vec<&Unanswered> = lost.iter().filter(|u| u.sent.is_some_and(|t| t < term)).collect();
    eprintln!(
        "{mode}: {ok} answers; master exited {exited_after:?} after SIGTERM; {} requests unanswered, {} of them sent before it: {lost:?}",
        lost.len(),
        before.len()
    );
    assert!(before.is_empty(), "requests sent before SIGTERM were not answered: {before:?}");
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_sigterm_under_load_answers_what_was_sent() {
    sigterm_under_load("rr");
}

#[test]
fn shared_sigterm_under_load_answers_what_was_sent() {
    sigterm_under_load("shared");
}

#[test]
fn least_sigterm_under_load_answers_what_was_sent() {
    sigterm_under_load("least");
}

#[test]
fn reuseport_sigterm_under_load_answers_what_was_sent() {
    sigterm_under_load("reuseport");
}

// --- a deep pipeline held back by a slow reader -------------------------------------------

fn sigterm_answers_a_held_back_pipeline(mode: &str, backend: &str) {
    const CHUNK: usize = 1000;
    const MAX: u64 = 400_000;
    // The drain must outlast the slow read of every answer, however busy the
    // machine: 30 s (the default) once cut it off after 142,183 answers with
    // CPU burners beside the suite.
    let args = ["--mode", mode, "--workers", "2", "--backend", backend, "--shutdown-timeout", "300"];
    let mut s = Server::start(&args);
    let stream = connect_narrow(s.addr(), 4096, None);
    let mut c = Conn { r: BufReader::new(stream) };
    c.get_ok(); // the connection is a worker's now

    // Requests go out in chunks of whole requests until the kernel takes no
    // more: the server's answers back up in our small receive buffer, so it
    // stops reading, its receive window closes and our send buffer fills.
    // `written` counts the requests fully written; `stalled` is set when a
    // chunk finds no room to start in.
    let written = Arc::new(AtomicU64::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let quit = Arc::new(AtomicBool::new(false));
    let mut w = c.stream().try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let writer = {
        let (written, stalled, quit) = (Arc::clone(&written), Arc::clone(&stalled), Arc::clone(&quit));
        thread::spawn(move || {
            let chunk = repeat(GET, CHUNK);
            while !quit.load(Ordering::Relaxed) && written.load(Ordering::Relaxed) < MAX {
                if !writable_now(&w) {
                    stalled.store(true, Ordering::Relaxed);
                }
                if w.write_all(&chunk).is_err() {
                    break;
                }
                written.fetch_add(CHUNK as u64, Ordering::Relaxed);
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || stalled.load(Ordering::Relaxed)
            || written.load(Ordering::Relaxed) >= MAX),
        "the server kept reading {} requests",
        written.load(Ordering::Relaxed)
    );
    let answered_before = stats_totals(&s.stats()).1;

    let from = s.log_len();
    // Counted before the signal: these requests were all written before it.
    let sent_before = written.load(Ordering::Relaxed);
    s.signal(libc::SIGTERM);
    quit.store(true, Ordering::Relaxed);
    s.wait_for_log_from(from, |l| l.contains("SIGTERM received: stopping"), IO_TIMEOUT);
    // Read only once every worker has been told to drain (and has started to).
    wait_draining(&s);

    // Now read: every request written before the signal must be answered.
    let mut answered = 0u64;
    let end = loop {
        match c.try_read() {
            Ok(resp) if resp.status == 200 && resp.body == BODY => {
                answered += 1;
                if resp.has_connection("close") {
                    break format!("Connection: close on answer {answered}");
                }
            }
            Ok(resp) => break format!("unexpected answer {}: {resp:?}", answered + 1),
            Err(e) => break format!("after {answered} answers: {e}"),
        }
    };
    writer.join().unwrap();
    let status = s.wait_exit(Duration::from_secs(10));
    eprintln!(
        "{mode}: {sent_before} requests written before SIGTERM ({} written in all), {answered_before} answered by then; \
         {answered} answered in all, then {end}",
        written.load(Ordering::Relaxed)
    );
    check_clean_exit(&mut s, status, 2);
    stop_and_check_no_process_left(s);
    assert!(
        answered >= sent_before,
        "{mode}: {sent_before} pipelined requests were written before SIGTERM, only {answered} answered (the server \
         had answered {answered_before} when the signal came; then {end})"
    );
}

#[test]
fn rr_sigterm_answers_a_held_back_pipeline_on_uring() {
    sigterm_answers_a_held_back_pipeline("rr", "uring");
}

#[test]
fn shared_sigterm_answers_a_held_back_pipeline_on_uring() {
    sigterm_answers_a_held_back_pipeline("shared", "uring");
}

#[test]
fn rr_sigterm_answers_a_held_back_pipeline_on_epoll() {
    sigterm_answers_a_held_back_pipeline("rr", "epoll");
}

#[test]
fn shared_sigterm_answers_a_held_back_pipeline_on_epoll() {
    sigterm_answers_a_held_back_pipeline("shared", "epoll");
}

#[test]
fn least_sigterm_answers_a_held_back_pipeline() {
    sigterm_answers_a_held_back_pipeline("least", "uring");
}

#[test]
fn reuseport_sigterm_answers_a_held_back_pipeline() {
    sigterm_answers_a_held_back_pipeline("reuseport", "uring");
}

// --- a keep-alive client busy at the signal ------------------------------------------------

/// A keep-alive client that used its connection a moment before the stop
/// sends its next request after the drain's short grace (100 ms) and within
/// a second of its last answer: the worker kept the connection for it and
/// answers it, with `Connection: close`. Before, the worker closed the
/// connection 100 ms into the drain and the request was lost (seen as an
/// upgrade's only losses under keep-alive clients pausing 0-300 ms).
fn a_busy_keep_alive_client_gets_its_next_answer(mode: &str) {
    // The engine's `DRAIN_RECENT_MS` (its module is private).
    const DRAIN_KEEPS_A_RECENT_CONNECTION: Duration = Duration::from_secs(1);
    let mut s = Server::start(&["--mode", mode, "--workers", "1"]);
    let mut c = s.connect();
    c.get_ok();
    let answered = Instant::now();
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 1 worker", IO_TIMEOUT);
    wait_draining(&s);
    // The client's pause between requests: past the short grace.
    thread::sleep(Duration::from_millis(400).saturating_sub(answered.elapsed()));
    c.send(GET);
    // The worker keeps the connection a second from its answer, which went
    // out before `answered`: a request sent later than that (this thread, or
    // the stats the drain was seen in, unscheduled that long on a busy
    // machine) may meet the close, as the README says, and tells nothing.
    let sent_after = answered.elapsed();
    if sent_after < DRAIN_KEEPS_A_RECENT_CONNECTION {
        let resp = c.read();
        check_ok(&resp);
        assert!(resp.has_connection("close"), "an answer during the drain closes the connection: {resp:?}");
    } else {
        eprintln!(
            "the answer during the drain not checked: the next request went out {sent_after:?} after the last answer"
        );
        let _ = c.try_read();
    }
    c.expect_closed();
    let status = s.wait_exit(Duration::from_secs(20));
    check_clean_exit(&mut s, status, 1);
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_sigterm_answers_a_busy_keep_alive_client_next_request() {
    a_busy_keep_alive_client_gets_its_next_answer("rr");
}

#[test]
fn shared_sigterm_answers_a_busy_keep_alive_client_next_request() {
    a_busy_keep_alive_client_gets_its_next_answer("shared");
}

// --- a blank line after a request ---------------------------------------------------------

/// A client that ends a request with an extra line end (RFC 9112 §2.2 asks
/// servers to ignore empty lines before a request line) leaves an idle
/// connection, which a stop closes after its grace. Before, the line end was
/// kept as a header block begun: the drain waited for it until
/// `--header-timeout`, and the master's stop with it.
fn a_blank_line_after_a_request_does_not_hold_a_stop(mode: &str) {
    let mut s =
        Server::start(&["--mode", mode, "--workers", "1", "--header-timeout", "120", "--shutdown-timeout", "120"]);
    let mut c = s.connect();
    // One write: once its answer is back, the worker has read the line end too.
    c.send(&[GET, b"\r\n"].concat());
    check_ok(&c.read());
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 1 worker", IO_TIMEOUT);
    c.expect_closed();
    let status = s.wait_exit(Duration::from_secs(30));
    check_clean_exit(&mut s, status, 1);
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_sigterm_is_not_held_by_a_blank_line_after_a_request() {
    a_blank_line_after_a_request_does_not_hold_a_stop("rr");
}

#[test]
fn shared_sigterm_is_not_held_by_a_blank_line_after_a_request() {
    a_blank_line_after_a_request_does_not_hold_a_stop("shared");
}

// --- a new client while the stop drains ----------------------------------------------------

/// How long a connect during a stop's drain may take to be refused: past
/// the kernel's SYN retries at 1, 3 and 7 s. `reuseport`'s log says it
/// stopped listening once the queue is closed to newcomers (their SYN
/// dropped); the listener is shut at the master's next look, after the
/// handshakes under way end and the packets in flight pass (well under a
/// second on a quiet machine; past the retry at 3 s once under load, when a
/// connect that waited `IO_TIMEOUT` timed out), and the next retry is
/// refused. A client left waiting for the drain would wait 120 s here.
const REFUSED_BY_A_RETRY: Duration = Duration::from_secs(12);

/// A client that connects while a stop drains (held here by a request half
/// sent) is refused at once, or, queued before the listener stopped
/// listening, answered (`503`, or served by a draining `reuseport` worker).
/// Before, it waited in the listen queue for as long as the drain lasted, up
/// to `--shutdown-timeout`, and was reset when the master exited.
fn a_client_during_the_drain_is_not_left_waiting(mode: &str) {
    let mut s =
        Server::start(&["--mode", mode, "--workers", "1", "--body-timeout", "120", "--shutdown-timeout", "120"]);
    let mut c = s.connect();
    c.get_ok();
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello");
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l.starts_with("stopped listening"), IO_TIMEOUT);
    wait_one_connection_held_while_draining(&s);

    match TcpStream::connect_timeout(&s.addr(), REFUSED_BY_A_RETRY) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("{mode}: a connect during the drain failed otherwise than refused: {e}"),
        Ok(stream) => {
            let mut late = Conn { r: BufReader::new(stream) };
            late.send(GET);
            late.stream().set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
            let answer = late.try_read();
            assert!(answer.is_ok(), "{mode}: a client queued during the drain got no answer: {answer:?}");
        }
    }

    c.send(b"world");
    check_ok(&c.read());
    let status = s.wait_exit(Duration::from_secs(20));
    check_clean_exit(&mut s, status, 1);
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_sigterm_refuses_new_clients_while_draining() {
    a_client_during_the_drain_is_not_left_waiting("rr");
}

#[test]
fn least_sigterm_refuses_new_clients_while_draining() {
    a_client_during_the_drain_is_not_left_waiting("least");
}

#[test]
fn shared_sigterm_refuses_new_clients_while_draining() {
    a_client_during_the_drain_is_not_left_waiting("shared");
}

#[test]
fn reuseport_sigterm_refuses_new_clients_while_draining() {
    a_client_during_the_drain_is_not_left_waiting("reuseport");
}

// --- a request half-sent at the signal ------------------------------------------------------

/// A POST whose body is sent in two halves; the stop signal comes in between.
fn half_sent_request_is_finished(mode: &str, sig: i32, name: &str) {
    let mut s = Server::start(&["--mode", mode, "--workers", "2"]);
    let mut idle = s.connect();
    idle.get_ok(); // an idle keep-alive connection: closed by the drain
    let mut c = s.connect();
    c.get_ok();
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello");

    let from = s.log_len();
    s.signal(sig);
    s.wait_for_log_from(from, |l| l == format!("{name} received: stopping 2 workers"), IO_TIMEOUT);
    // The idle connection is closed by the drain (the usual wait: on a busy
    // machine the worker may take a while to get to it); the busy one is
    // waited for: its worker drains, holding it, and the master waits for
    // that worker.
    idle.expect_closed();
    wait_one_connection_held_while_draining(&s);
    assert!(s.is_running(), "master exited while a request was half-sent");

    c.send(b"world");
    let resp = c.read();
    check_ok(&resp);
    assert!(resp.has_connection("close"), "an answer during the drain closes the connection: {resp:?}");
    c.expect_closed();
    // Its worker exits once the connection is closed, then the master: a
    // generous bound, since a busy machine may take seconds to get there.
    let status = s.wait_exit(Duration::from_secs(20));
    check_clean_exit(&mut s, status, 2);
    stop_and_check_no_process_left(s);
}

#[test]
fn rr_sigterm_finishes_a_half_sent_request() {
    half_sent_request_is_finished("rr", libc::SIGTERM, "SIGTERM");
}

#[test]
fn shared_sigquit_finishes_a_half_sent_request() {
    half_sent_request_is_finished("shared", libc::SIGQUIT, "SIGQUIT");
}

#[test]
fn least_sigint_finishes_a_half_sent_request() {
    half_sent_request_is_finished("least", libc::SIGINT, "SIGINT");
}

#[test]
fn reuseport_sigterm_finishes_a_half_sent_request() {
    half_sent_request_is_finished("reuseport", libc::SIGTERM, "SIGTERM");
}

// --- a draining read that takes exactly what the connection has room for -------------------

/// A worker's carry buffer at the default `--max-header` (8 KiB): 16 KiB,
/// the most one read takes for a connection with nothing held.
const CARRY_ROOM: usize = 16 * 1024;

/// During the drain a pipelined burst arrives whose read fills the
/// connection's room to the byte, and nothing follows it. The socket is
/// empty after that read as after a short one: the last answer must say
/// `Connection: close` (the epoll driver took a full read to mean "more
/// waits", answered with keep-alive and cut the connection once idle).
#[test]
fn a_draining_read_that_fills_the_room_exactly_still_closes_with_the_last_answer() {
    let mut s = Server::start(&["--workers", "1"]);
    let mut c = s.connect();
    c.get_ok();
    // Half a head: the connection is busy, so the drain does not close it.
    let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    c.send(head);
    let from = s.log_len();
    s.signal(libc::SIGTERM);
    s.wait_for_log_from(from, |l| l == "SIGTERM received: stopping 1 worker", IO_TIMEOUT);
    wait_one_connection_held_while_draining(&s);

    // The head's end, whole requests, and one padded to end the burst at
    // the room's last byte.
    let mut burst = b"\r\n".to_vec();
    let last = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \r\n\r\n";
    let whole = (CARRY_ROOM - head.len() - burst.len() - last.len()) / GET.len();
    burst.extend_from_slice(&repeat(GET, whole));
    let pad = CARRY_ROOM - head.len() - burst.len() - last.len();
    burst.extend_from_slice(&last[..last.len() - 4]);
    burst.extend_from_slice(&vec![b'y'; pad]);
    burst.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len() + burst.len(), CARRY_ROOM);
    c.send(&burst);

    let expected = whole + 2;
    for n in 1..=expected {
        let resp = c.read();
        check_ok(&resp);
        if n < expected {
            assert!(!resp.has_connection("close"), "answer {n} of {expected} closes: {resp:?}");
        } else {
            assert!(resp.has_connection("close"), "the last answer of a drain closes the connection: {resp:?}");
        }
    }
    c.expect_closed();
    let status = s.wait_exit(Duration::from_secs(20));
    check_clean_exit(&mut s, status, 1);
    stop_and_check_no_process_left(s);
}

// --- stragglers -----------------------------------------------------------------------------

#[test]
fn shutdown_timeout_ends_a_straggler() {
    let mut s = Server::start(&["--workers", "2", "--shutdown-timeout", "1"]);
    let mut c = s.connect();
    c.get_ok();
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello"); // never finished

    let term = signal_at(&s, libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(20));
    let took = term.elapsed();
    // The master starts the 1 s when it handles the signal, after `term`.
    assert!(took >= Duration::from_secs(1), "the straggler got less than --shutdown-timeout: {took:?}");
    // Ended by the 1 s, not by the default 30 s: how soon after the 1 s is
    // the machine's business (a kill, a reap, a log line), so the bound is
    // far from both.
    assert!(took < Duration::from_secs(15), "the straggler was not ended after --shutdown-timeout: {took:?}");
    check_clean_exit(&mut s, status, 2);
    // Its connection is closed, without an answer. Every process is gone by
    // now, yet the close once came over 1 s later under load (a full suite
    // beside two CPU burners; most likely the kernel's own teardown of the
    // dead worker's ring, which holds the socket): the usual wait, not 1 s.
    c.expect_closed();
    stop_and_check_no_process_left(s);
}

#[test]
fn second_sigint_kills_workers_at_once() {
    let mut s = Server::start(&["--workers", "2"]);
    let mut c = s.connect();
    c.get_ok();
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello"); // a straggler
    let from = s.log_len();
    s.signal(libc::SIGINT);
    s.wait_for_log_from(from, |l| l == "SIGINT received: stopping 2 workers", IO_TIMEOUT);
    // The straggler's worker drains, holding its half-sent request (the
    // default shutdown timeout is 30 s), and the master waits for it.
    wait_one_connection_held_while_draining(&s);
    assert!(s.is_running(), "master exited while a worker still held a request (default shutdown timeout 30 s)");

    let second = signal_at(&s, libc::SIGINT);
    let status = s.wait_exit(Duration::from_secs(20));
    let took = second.elapsed();
    s.wait_for_log_from(from, |l| l == "second SIGINT: killing workers now", IO_TIMEOUT);
    assert!(
        s.log()[from..].iter().any(|l| l.ends_with("killed by signal 9 (SIGKILL)")),
        "the straggling worker was killed: {:?}",
        &s.log()[from..]
    );
    // At once, not after the default 30 s shutdown timeout: the bound is far
    // from both, as a busy machine may take seconds to kill, reap and exit.
    assert!(took < Duration::from_secs(15), "exit took {took:?} after the second SIGINT");
    check_clean_exit(&mut s, status, 2);
    // Killed with its worker: the usual wait (see `shutdown_timeout_ends_a_straggler`).
    c.expect_closed();
    stop_and_check_no_process_left(s);
}
