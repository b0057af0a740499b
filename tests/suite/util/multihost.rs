//! Several ringmaster hosts behind the kernel's own L4 balancing, from a
//! test. The topology is `scripts/multihost.sh`'s alone: `serve` makes the
//! namespaces (a client, a router holding the service IP, the hosts), starts
//! ringmaster in each host and runs the health loop that keeps the router's
//! nftables map to the hosts answering 200; it takes one command per line on
//! stdin and answers `ok ...` or `error ...` on stdout, where the health
//! loop's events (`host K out: ...`, `host K in: ...`) appear as they
//! happen. A test sends commands, waits for events, and loads the service
//! from the client's namespace, which its client threads join with
//! setns(2).
//!
//! Everything is bounded: every wait has a deadline, every socket timeouts,
//! and dropping a [`Topology`] ends the script, whose trap removes every
//! namespace and process it made (if it does not end, it is killed and
//! `multihost.sh down` removes what it left).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{test_backend, BIN};

/// The script that makes (and removes) the topology.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/multihost.sh");

/// How long the script may take to be up: a first run on a fresh machine
/// installs nftables with apt-get.
const UP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the script gets to remove everything once its stdin has closed.
const DOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket timeouts of the load's clients.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why these tests cannot run here (not root, or a kernel without network
/// namespaces), or None. A missing `ip` or `nft` is no reason: the script
/// installs iproute2 and nftables with apt-get, as on a fresh CI machine.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root: network namespaces, veth pairs and nftables need it".into());
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Some("no /proc/self/ns/net: this kernel has no network namespaces".into());
    }
    None
}

/// The topology's knobs (the script's options).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub hosts: usize,
    pub health_interval: Duration,
    pub probe_timeout: Duration,
    pub drain_delay: Duration,
}

/// One line the script printed, and when the test read it.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

#[derive(Default)]
struct Lines {
    state: Mutex<(Vec<Line>, bool)>,
    cv: Condvar,
}

/// The topology of `multihost.sh serve`, up.
pub struct Topology {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Lines>,
    prefix: String,
    pub settings: Settings,
    /// The service IP and port, as clients in the client namespace reach it.
    pub service: SocketAddr,
    /// The client namespace (a file under /run/netns).
    pub client_netns: PathBuf,
}

impl Topology {
    /// Brings the topology up with namespaces named `rmt<pid><tag>-...`;
    /// returns once every host is in the map.
    pub fn up(tag: &str, settings: Settings) -> Topology {
        let prefix = format!("rmt{}{tag}", std::process::id());
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .args(["--prefix", &prefix, "--bin", BIN])
            .args(["--hosts", &settings.hosts.to_string()])
            .args(["--health-interval", &secs(settings.health_interval)])
            .args(["--probe-timeout", &secs(settings.probe_timeout)])
            .args(["--drain-delay", &secs(settings.drain_delay)])
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(backend) = test_backend() {
            cmd.env("RINGMASTER_ARGS", format!("--backend {backend}"));
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
        let lines = Arc::new(Lines::default());
        let stdout = child.stdout.take().expect("stdout piped");
        {
            let lines = Arc::clone(&lines);
            let tag = prefix.clone();
            thread::spawn(move || {
                for text in BufReader::new(stdout).lines() {
                    let Ok(text) = text else { break };
                    eprintln!("[{tag}] {text}");
                    let mut st = lines.state.lock().unwrap();
                    st.0.push(Line { at: Instant::now(), text });
                    lines.cv.notify_all();
                }
                lines.state.lock().unwrap().1 = true;
                lines.cv.notify_all();
            });
        }
        let stderr = child.stderr.take().expect("stderr piped");
        let tag = prefix.clone();
        thread::spawn(move || {
            for text in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag} stderr] {text}");
            }
        });
        let stdin = child.stdin.take();
        let mut topology = Topology {
            child,
            stdin,
            lines,
            prefix,
            settings,
            service: "0.0.0.0:0".parse().unwrap(),
            client_netns: PathBuf::new(),
        };
        let ready = topology.wait_line(0, |l| l.starts_with("ready "), UP_TIMEOUT).text;
        let field = |name: &str| -> String {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {ready:?}"))
                .to_string()
        };
        topology.service = field("service=").parse().unwrap_or_else(|e| panic!("service in {ready:?}: {e}"));
        topology.client_netns = PathBuf::from(field("client="));
        topology
    }

    /// Lines printed so far: pass it to [`Topology::wait_line`] to see only later ones.
    pub fn len(&self) -> usize {
        self.lines.state.lock().unwrap().0.len()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.state.lock().unwrap().0.clone()
    }

    /// Waits for a line from index `from` on that satisfies `pred`; panics
    /// after `timeout` or when the script has ended, with what it printed.
    pub fn wait_line(&self, from: usize, pred: impl Fn(&str) -> bool, timeout: Duration) -> Line {
        let deadline = Instant::now() + timeout;
        let mut st = self.lines.state.lock().unwrap();
        let mut next = from;
        loop {
            while next < st.0.len() {
                if pred(&st.0[next].text) {
                    return st.0[next].clone();
                }
                next += 1;
            }
            let now = Instant::now();
            if st.1 || now >= deadline {
                let all: Vec<&str> = st.0.iter().map(|l| l.text.as_str()).collect();
                let why = if st.1 { "the script ended" } else { "timed out" };
                panic!("{why} waiting {timeout:?} for a line from {from} on; it printed:\n{}", all.join("\n"));
            }
            st = self.lines.cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Sends one command and waits (at most `timeout`) for its answer,
    /// which must be `ok VERB ...`: that line.
    pub fn command(&mut self, command: &str, timeout: Duration) -> Line {
        let verb = command.split_whitespace().next().expect("a command");
        let from = self.len();
        let stdin = self.stdin.as_mut().expect("the script's stdin is open");
        stdin.write_all(format!("{command}\n").as_bytes()).expect("write a command to the script");
        stdin.flush().expect("flush the script's stdin");
        let (ok, error) = (format!("ok {verb}"), format!("error {verb}"));
        let reply = self.wait_line(from, |l| l.starts_with(&ok) || l.starts_with(&error), timeout);
        assert!(reply.text.starts_with(&ok), "`{command}` failed: {}", reply.text);
        reply
    }

    /// Host `k`'s stats line (`ringmaster ctl status`).
    pub fn status(&mut self, k: usize) -> serde_json::Value {
        let reply = self.command(&format!("status {k}"), Duration::from_secs(10)).text;
        let json = reply.strip_prefix(&format!("ok status {k} ")).unwrap_or_else(|| panic!("status reply {reply:?}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("status of host {k} {json:?}: {e}"))
    }

    /// Connections host `k`'s workers have accepted (its stats), health probes included.
    pub fn accepted(&mut self, k: usize) -> u64 {
        let status = self.status(k);
        let workers = status["workers"].as_array().cloned().unwrap_or_default();
        workers.iter().map(|w| w["accepted"].as_u64().unwrap_or_else(|| panic!("accepted in {status}"))).sum()
    }

    /// Whether host `k` is in the map, as the health loop's last `host K in:`
    /// or `host K out:` says (it says each change, the first `in` included).
    pub fn in_map(&self, k: usize) -> bool {
        let (inside, outside) = (format!("host {k} in:"), format!("host {k} out:"));
        let st = self.lines.state.lock().unwrap();
        let last = st.0.iter().rev().find(|l| l.text.starts_with(&inside) || l.text.starts_with(&outside));
        last.is_some_and(|l| l.text.starts_with(&inside))
    }

    /// Waits for the health loop's `host K out:` (or `in:`) after line `from`.
    pub fn wait_health(&self, from: usize, k: usize, state: &str, timeout: Duration) -> Line {
        let want = format!("host {k} {state}:");
        self.wait_line(from, |l| l.starts_with(&want), timeout)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        drop(self.stdin.take()); // end of input: the script quits, and its trap removes everything
        let deadline = Instant::now() + DOWN_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "multihost.sh (prefix {}) still runs {DOWN_TIMEOUT:?} after its input ended: SIGKILL, then down",
            self.prefix
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        let down = Command::new("bash").arg(SCRIPT).args(["--prefix", &self.prefix, "down"]).status();
        eprintln!("multihost.sh down: {down:?}");
    }
}

/// Seconds as the script takes them (`0.25`).
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// Moves the calling thread into the network namespace at `path`: the
/// sockets it opens from then on live there (setns(2) with CLONE_NEWNET
/// acts on the calling thread alone).
pub fn enter_netns(path: &Path) {
    let ns = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns into {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// Clients in the client namespace
// ---------------------------------------------------------------------------

/// One request of a [`Load`] and what came of it.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request began (its connect, for one on a new connection).
    pub began: Instant,
    /// The host that answered it (each host's body says which it is).
    pub host: Option<u8>,
    /// It went out on a connection opened for it (not a reused keep-alive one).
    pub fresh: bool,
    /// A keep-alive connection's host (from its earlier answers) when it
    /// failed under this request.
    pub held_by: Option<u8>,
    /// Sent again on a new connection after the server had closed the
    /// reused one before any byte of an answer (as HTTP clients do for
    /// idempotent requests, RFC 9110 9.2.2).
    pub retried: bool,
    /// Why it got no answer.
    pub error: Option<String>,
}

impl Record {
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The record for a message, its time from `origin` on.
    pub fn describe(&self, origin: Instant) -> String {
        let at = match self.began.checked_duration_since(origin) {
            Some(d) => format!("+{d:?}"),
            None => format!("-{:?}", origin - self.began),
        };
        let conn = if self.fresh { "a new connection" } else { "a reused connection" };
        let held = self.held_by.map(|h| format!(" held by host {h}")).unwrap_or_default();
        let again = if self.retried { ", sent again" } else { "" };
        match (&self.error, self.host) {
            (Some(error), _) => format!("began {at} on {conn}{held}{again}: {error}"),
            (None, Some(host)) => format!("began {at} on {conn}{held}{again}: answered by host {host}"),
            (None, None) => format!("began {at} on {conn}: no answer, no error"),
        }
    }
}

/// What a request got: the answering host, or why not (and how many bytes of
/// an answer had arrived).
struct Answer {
    host: u8,
    close: bool,
}

struct NoAnswer {
    bytes: usize,
    error: String,
}

/// A bounded load from the client namespace through the service IP:
/// `churn` threads each sending `Connection: close` requests on new
/// connections, and `keepalive` threads each reusing one connection (a new
/// one when the server closes it), until [`Load::finish`] or `limit`.
pub struct Load {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    handles: Vec<JoinHandle<()>>,
    /// The host each keep-alive connection had its first answer from.
    pub keepalive_hosts: Vec<u8>,
}

/// Pause of a churn client between requests, and of a keep-alive one.
const CHURN_PAUSE: Duration = Duration::from_millis(2);
const KEEPALIVE_PAUSE: Duration = Duration::from_millis(4);

impl Load {
    pub fn start(topology: &Topology, churn: usize, keepalive: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let deadline = Instant::now() + limit;
        let (first_tx, first_rx) = mpsc::channel();
        let mut handles = Vec::new();
        for i in 0..churn + keepalive {
            let (stop, records, netns, service) =
                (Arc::clone(&stop), Arc::clone(&records), topology.client_netns.clone(), topology.service);
            let first_tx = first_tx.clone();
            let handle = thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    enter_netns(&netns);
                    let running = || !stop.load(Ordering::Relaxed) && Instant::now() < deadline;
                    if i < churn {
                        while running() {
                            let began = Instant::now();
                            let (host, error) = match close_request(service) {
                                Ok(answer) => (Some(answer.host), None),
                                Err(e) => (None, Some(e.error)),
                            };
                            let r = Record { began, host, fresh: true, held_by: None, retried: false, error };
                            records.lock().unwrap().push(r);
                            thread::sleep(CHURN_PAUSE);
                        }
                    } else {
                        keepalive_client(service, &records, &first_tx, running);
                    }
                })
                .expect("spawn a load thread");
            handles.push(handle);
        }
        drop(first_tx);
        let mut keepalive_hosts = Vec::new();
        for _ in 0..keepalive {
            match first_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(host) => keepalive_hosts.push(host),
                Err(e) => panic!("a keep-alive client had no first answer within 10 s ({e})"),
            }
        }
        Load { stop, records, handles, keepalive_hosts }
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over the records (checked every 10 ms); panics
    /// after `timeout`, saying `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Record]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.records.lock().unwrap()) {
                return;
            }
            if Instant::now() >= deadline {
                let records = self.records();
                let failed = records.iter().filter(|r| r.failed()).count();
                panic!("the load never saw {what} within {timeout:?} ({} requests, {failed} failed)", records.len());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients; every record.
    pub fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.join().expect("a load thread panicked");
        }
        self.records()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A keep-alive client: one connection reused request after request; a new
/// one when the server says `Connection: close` or closes it. A request the
/// server closed a reused connection under before any byte of its answer
/// goes once more on a new connection.
fn keepalive_client(
    service: SocketAddr,
    records: &Mutex<Vec<Record>>,
    first: &mpsc::Sender<u8>,
    running: impl Fn() -> bool,
) {
    let mut conn: Option<(TcpStream, Option<u8>)> = None;
    let mut told_first = false;
    while running() {
        let began = Instant::now();
        let fresh = conn.is_none();
        let result = match conn.as_mut() {
            Some((stream, _)) => request_on(stream),
            None => match connect(service) {
                Ok(stream) => {
                    let stream = conn.insert((stream, None));
                    request_on(&mut stream.0)
                }
                Err(e) => Err(e),
            },
        };
        let held = conn.as_ref().and_then(|c| c.1);
        let record = match result {
            Ok(answer) => {
                if answer.close {
                    conn = None;
                } else if let Some(c) = conn.as_mut() {
                    c.1 = Some(answer.host);
                }
                Record { began, host: Some(answer.host), fresh, held_by: None, retried: false, error: None }
            }
            Err(e) if !fresh && e.bytes == 0 => {
                // The server closed the connection (idle, to it) as the
                // request went out: once more on a new one.
                conn = None;
                match connect(service).and_then(|mut stream| request_on(&mut stream).map(|a| (stream, a))) {
                    Ok((stream, answer)) => {
                        if !answer.close {
                            conn = Some((stream, Some(answer.host)));
                        }
                        Record {
                            began,
                            host: Some(answer.host),
                            fresh: true,
                            held_by: held,
                            retried: true,
                            error: None,
                        }
                    }
                    Err(again) => Record {
                        began,
                        host: None,
                        fresh: true,
                        held_by: held,
                        retried: true,
                        error: Some(format!("{}; once more on a new connection: {}", e.error, again.error)),
                    },
                }
            }
            Err(e) => {
                conn = None;
                Record { began, host: None, fresh, held_by: held, retried: false, error: Some(e.error) }
            }
        };
        if !told_first {
            if let Some(host) = record.host {
                told_first = true;
                let _ = first.send(host);
            }
        }
        records.lock().unwrap().push(record);
        thread::sleep(KEEPALIVE_PAUSE);
    }
}

fn connect(service: SocketAddr) -> Result<TcpStream, NoAnswer> {
    let fail = |what: &str, e: std::io::Error| NoAnswer { bytes: 0, error: format!("{what}: {e}") };
    let stream = TcpStream::connect_timeout(&service, CLIENT_TIMEOUT).map_err(|e| fail("connect", e))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| fail("set_read_timeout", e))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| fail("set_write_timeout", e))?;
    Ok(stream)
}

/// The request every `Connection: close` client sends.
const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n";

/// One `Connection: close` request on a new connection.
fn close_request(service: SocketAddr) -> Result<Answer, NoAnswer> {
    close_request_on(&mut connect(service)?)
}

/// One `Connection: close` request on `stream`, new.
fn close_request_on(stream: &mut TcpStream) -> Result<Answer, NoAnswer> {
    stream.write_all(CLOSE_REQUEST).map_err(|e| NoAnswer { bytes: 0, error: format!("write: {e}") })?;
    read_answer(stream)
}

/// One keep-alive request on `stream`.
fn request_on(stream: &mut TcpStream) -> Result<Answer, NoAnswer> {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: service\r\n\r\n")
        .map_err(|e| NoAnswer { bytes: 0, error: format!("write: {e}") })?;
    read_answer(stream)
}

/// Reads one answer, which must be `200` with the body `hello from host K\n`.
fn read_answer(stream: &mut TcpStream) -> Result<Answer, NoAnswer> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let bad = |what: String| NoAnswer { bytes: buf.len(), error: what };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap_or_default();
            let mut length = None;
            let mut close = false;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else { continue };
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
            let Some(length) = length else { return Err(bad(format!("no Content-Length in {head:?}"))) };
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                if !status.starts_with("HTTP/1.1 200 ") {
                    return Err(bad(format!("answered {status:?}: {body:?}")));
                }
                let host = body.strip_prefix("hello from host ").and_then(|h| h.trim_end().parse().ok());
                return match host {
                    Some(host) => Ok(Answer { host, close }),
                    None => Err(bad(format!("a body that names no host: {body:?}"))),
                };
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(NoAnswer { bytes: buf.len(), error: format!("EOF after {} bytes", buf.len()) }),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(NoAnswer { bytes: buf.len(), error: format!("read after {} bytes: {e}", buf.len()) }),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading the records
// ---------------------------------------------------------------------------

/// Answers per host.
pub fn answers_per_host(records: &[Record]) -> BTreeMap<u8, u64> {
    let mut per = BTreeMap::new();
    for host in records.iter().filter_map(|r| r.host) {
        *per.entry(host).or_insert(0) += 1;
    }
    per
}

/// Jain's fairness index: (sum x)^2 / (n * sum x^2); 1 is an even split.
pub fn jain(xs: &[u64]) -> f64 {
    let sum: f64 = xs.iter().map(|&x| x as f64).sum();
    let squares: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if squares == 0.0 {
        return 0.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

/// The first few failures, for a message, their times from `origin` on.
pub fn first_failures(records: &[Record], n: usize, origin: Instant) -> Vec<String> {
    records.iter().filter(|r| r.failed()).take(n).map(|r| r.describe(origin)).collect()
}

/// The host most keep-alive connections had their first answer from.
pub fn busiest(hosts: &[u8]) -> u8 {
    let mut count = BTreeMap::new();
    for &h in hosts {
        *count.entry(h).or_insert(0u32) += 1;
    }
    count.into_iter().max_by_key(|&(h, c)| (c, std::cmp::Reverse(h))).map(|(h, _)| h).expect("keep-alive clients")
}

// ---------------------------------------------------------------------------
// Connections from a chosen client port
// ---------------------------------------------------------------------------

/// Client ports [`unanswered_from`] connects from, one each: below the
/// ephemeral range (32768-60999), which the loads' own connections use.
const PROBE_PORTS: std::ops::Range<u16> = 20_000..30_000;

/// A new connection to `service` from local `port`, bound explicitly so
/// that a test can connect from the same port again once the last
/// connection from it was reset (no TIME_WAIT then).
fn connect_from(service: SocketAddr, port: u16) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(service) = service else {
        return Err(std::io::Error::other(format!("{service}: not IPv4")));
    };
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    // A blocking connect gives up after this, as a send would.
    let timeout = nix::sys::time::TimeVal::new(CLIENT_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port))?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(service))?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    Ok(stream)
}

/// From the calling thread's namespace, connections to `service` from one
/// client port after another, each sending a request, until one has no
/// answer within `patience` (the map sent it to a host that does not
/// accept): that port and its connection, or `None` when every port was
/// tried. The others are closed once answered.
pub fn unanswered_from(service: SocketAddr, patience: Duration) -> Option<(u16, TcpStream)> {
    for port in PROBE_PORTS {
        let Ok(mut stream) = connect_from(service, port) else { continue };
        let sent = stream.write_all(CLOSE_REQUEST);
        if sent.is_err() || stream.set_read_timeout(Some(patience)).is_err() {
            continue;
        }
        match stream.read(&mut [0u8; 1]) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Some((port, stream));
            }
            _ => {}
        }
    }
    None
}

/// The pid of host `k`'s master, as the script said when it started it
/// (`host K at ADDR in namespace NS: pid PID, ...`).
pub fn host_pid(topology: &Topology, k: usize) -> u32 {
    let prefix = format!("host {k} at ");
    let lines = topology.lines();
    let line = lines.iter().rev().find(|l| l.text.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix:?} line"));
    let pid = line.text.split_once(": pid ").and_then(|(_, rest)| rest.split(',').next()?.trim().parse().ok());
    pid.unwrap_or_else(|| panic!("no pid in {:?}", line.text))
}

/// One `Connection: close` request on a new connection from client `port`;
/// the host that answered, or what went wrong.
pub fn close_request_from(service: SocketAddr, port: u16) -> Result<u8, String> {
    let mut stream = connect_from(service, port).map_err(|e| format!("connect from port {port}: {e}"))?;
    close_request_on(&mut stream).map(|answer| answer.host).map_err(|e| e.error)
}
