//! Clients that make many requests: one-request `Connection: close` clients that
//! report failures instead of panicking, a bounded background load, and client
//! patterns several test files share.

#![allow(dead_code)]

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::stats::stats_when_idle;
use super::{eventually, read_response, stats_totals, Conn, Server, BODY, GET, GET_CLOSE};

/// Socket timeouts of the load clients. A connection the server loses ends in
/// a reset, an end of stream or a wrong answer, at once; a timeout only says
/// the machine was slow, which on a loaded 2-core machine can last seconds
/// (CI saw 6 s while other tests stopped and killed workers pinned to the
/// same CPU). So this is long: a test that must see a stall as a timeout
/// says so with [`Load::start_patient`]'s own timeout.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The pause of a [`Load`] client between requests: it leaves the 2 CPUs some
/// room for the server and the test.
pub const LOAD_PAUSE: Duration = Duration::from_micros(300);

// ---------------------------------------------------------------------------
// One request
// ---------------------------------------------------------------------------

/// A request the server did not answer: when its bytes were all written (None:
/// they were not, e.g. the connect or the write itself failed), and what
/// happened.
pub struct Unanswered {
    pub sent: Option<Instant>,
    pub what: String,
}

impl std::fmt::Debug for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sent {
            Some(t) => write!(f, "sent {:?} ago: {}", t.elapsed(), self.what),
            None => write!(f, "not sent: {}", self.what),
        }
    }
}

/// One `Connection: close` request on a fresh connection whose connect, reads
/// and writes time out after `timeout`; Ok only for the standard 200 and, with
/// `await_close`, the server's close after it (EOF or a reset after a complete
/// 200 both count). Never panics: every way of not getting there is an `Err`.
pub fn close_request_with(addr: SocketAddr, timeout: Duration, await_close: bool) -> Result<(), Unanswered> {
    let fail = |sent, what: String| Unanswered { sent, what };
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(None, format!("connect: {e}")))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| fail(None, e.to_string()))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| fail(None, e.to_string()))?;
    let mut r = BufReader::new(s);
    r.get_mut().write_all(GET_CLOSE).map_err(|e| fail(None, format!("write: {e}")))?;
    let sent = Some(Instant::now());
    let resp = read_response(&mut r).map_err(|e| fail(sent, format!("read: {e}")))?;
    if resp.status != 200 || resp.body != BODY {
        return Err(fail(sent, format!("unexpected response {resp:?}")));
    }
    if !await_close {
        return Ok(());
    }
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => Err(fail(sent, format!("{} unexpected bytes after the response", rest.len()))),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(fail(sent, format!("waiting for the server to close after the response: {e}"))),
    }
}

/// How long a keep-alive connection must have been idle for a request on it
/// to be lost without a fault ([`Load::start_keepalive`]): a draining worker
/// keeps a connection for a second after its last answer (the engine's
/// `DRAIN_RECENT_MS`), then closes it if it is idle; a little less, for the
/// worker's coarse clock and the answer's way to the client.
pub const IDLE_CLOSE_EXCUSE: Duration = Duration::from_millis(900);

/// A keep-alive client's connection with [`CLIENT_TIMEOUT`]s.
fn keepalive_connection(addr: SocketAddr) -> Result<Conn, String> {
    let s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(Conn { r: BufReader::new(s) })
}

/// One `Connection: close` request on a fresh connection with
/// [`CLIENT_TIMEOUT`]s; Ok only for the 200 (the client closes right after it).
pub fn close_request(addr: SocketAddr) -> Result<(), String> {
    close_request_with(addr, CLIENT_TIMEOUT, false).map_err(|u| u.what)
}

/// One connection: `n - 1` keep-alive requests (see [`Conn::get_ok`]), then
/// one with `Connection: close`, whose 200 must say `Connection: close`, then
/// the server's close.
pub fn requests_then_close(addr: SocketAddr, n: usize) {
    let mut c = Conn::connect(addr);
    for _ in 1..n {
        c.get_ok();
    }
    c.request_ok_then_closed(GET_CLOSE);
}

// ---------------------------------------------------------------------------
// A bounded load
// ---------------------------------------------------------------------------

/// A request of a [`Load`] that did not get its 200: when it began, and what
/// happened.
pub struct Failure {
    pub began: Instant,
    pub error: String,
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ago: {}", self.began.elapsed(), self.error)
    }
}

/// A bounded load: `clients` threads, each sending `Connection: close` requests
/// ([`close_request`]) on fresh connections one after another, `pause` apart,
/// until told to stop, `max_each` requests are done, or `limit` has passed.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    handles: Vec<JoinHandle<Vec<Failure>>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize, max_each: u64, limit: Duration, pause: Duration) -> Load {
        Load::start_patient(addr, clients, max_each, limit, pause, CLIENT_TIMEOUT)
    }

    /// [`Load::start`] with socket timeouts of `timeout` instead of
    /// [`CLIENT_TIMEOUT`], for a load that must wait out a stalled worker.
    pub fn start_patient(
        addr: SocketAddr,
        clients: usize,
        max_each: u64,
        limit: Duration,
        pause: Duration,
        timeout: Duration,
    ) -> Load {
        Load::run(clients, limit, move |going, ok| {
            let mut failures = Vec::new();
            for _ in 0..max_each {
                if !going() {
                    break;
                }
                let began = Instant::now();
                match close_request_with(addr, timeout, false) {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(u) => failures.push(Failure { began, error: u.what }),
                }
                thread::sleep(pause);
            }
            failures
        })
    }

    /// A bounded keep-alive load: `clients` threads, each sending `GET`s on
    /// one connection, `pause` apart, and opening a new one when an answer
    /// says `Connection: close`, until told to stop or `limit` has passed.
    /// A request that fails on a connection idle for [`IDLE_CLOSE_EXCUSE`]
    /// or more is no failure: a draining worker closes such a connection,
    /// and a request crossing its FIN is lost, as with any server that
    /// closes an idle connection (an HTTP client sends it again: RFC 9110
    /// 9.2.2; the README's limits table). The client then uses a new one.
    pub fn start_keepalive(addr: SocketAddr, clients: usize, limit: Duration, pause: Duration) -> Load {
        Load::run(clients, limit, move |going, ok| {
            let mut failures = Vec::new();
            // The connection to reuse, and when its last answer came.
            let mut open: Option<(Conn, Instant)> = None;
            while going() {
                let began = Instant::now();
                let (mut conn, idle) = match open.take() {
                    Some((conn, answered)) => (conn, Some(answered.elapsed())),
                    None => match keepalive_connection(addr) {
                        Ok(conn) => (conn, None),
                        Err(error) => {
                            failures.push(Failure { began, error });
                            thread::sleep(pause);
                            continue;
                        }
                    },
                };
                match conn.try_send(GET).and_then(|()| conn.try_read()) {
                    Ok(resp) if resp.status == 200 && resp.body == BODY => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if !resp.has_connection("close") {
                            open = Some((conn, Instant::now()));
                        }
                    }
                    Ok(resp) => failures.push(Failure { began, error: format!("unexpected response {resp:?}") }),
                    Err(_) if idle.is_some_and(|idle| idle >= IDLE_CLOSE_EXCUSE) => {}
                    Err(e) => {
                        let idle = idle.map_or("a new connection".to_string(), |d| format!("idle {d:?} before"));
                        failures.push(Failure { began, error: format!("keep-alive request ({idle}): {e}") });
                    }
                }
                thread::sleep(pause);
            }
            failures
        })
    }

    /// Runs `clients` threads of `client`, each handed a test of whether to
    /// go on (not told to stop, `limit` not passed) and the answer count;
    /// each returns its failures.
    fn run<C>(clients: usize, limit: Duration, client: C) -> Load
    where
        C: Fn(&dyn Fn() -> bool, &AtomicU64) -> Vec<Failure> + Clone + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + limit;
        let handles = (0..clients)
            .map(|_| {
                let (stop, ok, client) = (Arc::clone(&stop), Arc::clone(&ok), client.clone());
                thread::spawn(move || {
                    let going = || !stop.load(Ordering::Relaxed) && Instant::now() < deadline;
                    client(&going, &ok)
                })
            })
            .collect();
        Load { stop, ok, handles }
    }

    /// Answers so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until the load has had `n` answers; panics after `timeout`.
    pub fn wait_ok(&self, n: u64, timeout: Duration) {
        assert!(
            eventually(timeout, || self.ok() >= n),
            "load reached only {} of {n} answers in {timeout:?}",
            self.ok()
        );
    }

    /// Stops the clients; (answers, failures).
    pub fn finish(mut self) -> (u64, Vec<Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.handles.drain(..).flat_map(|h| h.join().expect("load client panicked")).collect();
        (self.ok(), failures)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Client patterns shared by the balancer tests (both modes)
// ---------------------------------------------------------------------------

/// Opens `conns` keep-alive connections first, so that all are live at once,
/// then runs them in parallel, `reqs` requests each (see [`Conn::get_ok`]);
/// returns the connections, still open.
pub fn keepalive_clients(addr: SocketAddr, conns: usize, reqs: usize) -> Vec<Conn> {
    let opened: Vec<Conn> = (0..conns).map(|_| Conn::connect(addr)).collect();
    let handles: Vec<_> = opened
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                for _ in 0..reqs {
                    c.get_ok();
                }
                c
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("client thread")).collect()
}

/// `THREADS` clients through one worker, each making `PER_THREAD` short
/// connections and closing each one as soon as its answer has arrived, as most
/// real clients do, without waiting for the server's FIN. With `with_errors`,
/// every other connection of every other client is a malformed request: the
/// server answers 400 and closes that connection itself (half-closing first and
/// waiting for the client's FIN). Every connection must get its own answer.
///
/// Engine hazard this catches (found with these tests; the `Connection: close`
/// case was fixed by b5ddf75, the server-decided close still has it): the
/// worker half-closes with an io_uring `Shutdown` op, which the kernel runs in
/// io-wq and which looks its fd number up only when it runs. When the client's
/// FIN arrives first, the worker closes that fd number, the next connection
/// it takes gets the same number, and the late shutdown(SHUT_WR) lands on the
/// new connection: its client sees EOF instead of its response.
pub fn short_connections_closed_by_the_client(mode: &str, with_errors: bool) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    let s = Server::start(&["--mode", mode, "--workers", "1"]);
    let addr = s.addr();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut failed = Vec::new();
                for i in 0..PER_THREAD {
                    let bad = with_errors && t % 2 == 0 && i % 2 == 0;
                    let mut c = Conn::connect(addr);
                    c.send(if bad { b"BAD REQUEST\r\n\r\n" } else { GET_CLOSE });
                    match c.try_read() {
                        Ok(r) if bad && r.status == 400 => {}
                        Ok(r) if !bad && r.status == 200 && r.body == BODY => {}
                        Ok(r) => failed.push(format!("connection {i} (bad request: {bad}): {r:?}")),
                        Err(e) => failed.push(format!("connection {i} (bad request: {bad}): {e}")),
                    }
                    // Dropped here: closed right after the answer.
                }
                failed
            })
        })
        .collect();
    let failed: Vec<String> = handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect();
    let stats = stats_when_idle(&s);
    let total = (THREADS * PER_THREAD) as u64;
    assert!(
        failed.is_empty(),
        "{} of {total} connections did not get their answer (stats {stats}); first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    // Counters are published once per loop turn: the last answers may be on
    // the wire a moment before they are counted.
    let mut last = stats;
    let counted = eventually(Duration::from_secs(5), || {
        last = s.stats();
        stats_totals(&last) == (total, total, 0)
    });
    assert!(counted, "expected {total} accepted and answered, none live: {last}");
}

/// Eight clients churning one connection at a time, 1 ms apart, for up to
/// 30 s, each waiting up to `patience` for its answer: the load run beside a
/// worker that stops or retires, whose clients wait for it instead of failing.
pub fn patient_churn(addr: SocketAddr, patience: Duration) -> Load {
    Load::start_patient(addr, 8, 1_000_000, Duration::from_secs(30), Duration::from_millis(1), patience)
}

/// Scales a 4-worker server with control socket `control` down to 1, one
/// worker at a time, under 8 churning clients, and asserts that no request
/// failed; prints the answers and the kernel's migration counts under `label`.
pub fn scale_down_4_to_1_under_churn(s: &Server, control: &std::path::Path, label: &str) {
    let (success_before, failure_before) = super::sockets::migrations();
    let load = patient_churn(s.addr(), Duration::from_secs(10));
    load.wait_ok(200, Duration::from_secs(10));
    // Three retirements under load: each worker's queue is emptied, the rest migrates.
    for (target, gone) in [(3u64, 4u64), (2, 3), (1, 2)] {
        let from = s.log_len();
        let (code, reply, _) = super::control::ctl(control, &["scale", &target.to_string()]);
        let workers = if target == 1 { "1 worker".to_string() } else { format!("{target} workers") };
        assert_eq!((code, reply.as_str()), (0, format!("ok scaling to {workers}").as_str()));
        s.wait_for_log_from(
            from,
            |l| l.starts_with(&format!("worker {gone} (pid ")) && l.ends_with(") exited with code 0"),
            Duration::from_secs(10),
        );
        let ok_now = load.ok();
        load.wait_ok(ok_now + 100, Duration::from_secs(10));
    }
    let (ok, failures) = load.finish();
    let (success, failure) = super::sockets::migrations();
    eprintln!(
        "{label} scale-down: {ok} answers, {} failures; TCPMigrateReqSuccess +{}, TCPMigrateReqFailure +{}",
        failures.len(),
        success - success_before,
        failure - failure_before
    );
    assert!(failures.is_empty(), "requests failed while workers retired: {failures:?}");
}
