//! Shared helpers for the integration tests: start the real `ringmaster` binary,
//! follow its log, read its stats line, and speak just enough HTTP/1.1 to check
//! its answers over real sockets on 127.0.0.1.
//!
//! Log lines look like `2026-12-01T21:58:31.123Z INFO  ringmaster[1234]: worker 1
//! started (pid 1235, cpu 0)` (an example's under its own name,
//! `hello_cluster[1234]:`); [`Server::log`] and the waits match the message
//! after `]: ` (see [`parse_log_line`]), [`Server::raw_log`] keeps whole lines.
//!
//! Everything here is bounded in time: every socket has read and write timeouts,
//! every wait has a deadline, and dropping a [`Server`] always ends the master and
//! all of its workers.

#![allow(dead_code)]

pub mod cgroup;
pub mod control;
pub mod hashed;
pub mod held;
pub mod load;
pub mod multihost;
pub mod operator;
pub mod ops;
pub mod procs;
pub mod seccomp;
pub mod seeded;
pub mod sockets;
pub mod stats;
pub mod still_at_stop;
pub mod upgrade;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming the backend every test server runs on
/// (`uring` or `epoll`; unset: the binary's default, `auto`).
pub const TEST_BACKEND: &str = "RINGMASTER_TEST_BACKEND";

/// The backend [`TEST_BACKEND`] names, if it names one: set but empty is
/// taken as unset (before, each reader passed `--backend ''` on, and every
/// server refused to start).
pub fn test_backend() -> Option<String> {
    std::env::var(TEST_BACKEND).ok().filter(|backend| !backend.is_empty())
}

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringmaster");

/// How long the master gets to print its listening line (or its workers to
/// be ready): a second on a quiet machine, over 10 s once with the suite
/// beside CPU burners. Only a failing test waits this long.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Server::wait_exit`] waits for the log's last lines once the master has exited.
const LOG_END_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long [`Server::stats`] waits for the stats line after its SIGUSR1.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// Default read/write timeout put on every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The fixed answer of every worker (default `--body`).
pub const BODY: &[u8] = b"hello world\n";

/// A minimal valid HTTP/1.1 request.
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// One request that asks the server to close afterwards.
pub const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

#[derive(Default)]
struct LogState {
    /// The message of every line (see [`log_message`]).
    lines: Vec<String>,
    /// Every line as printed.
    raw: Vec<String>,
    /// stderr reached EOF (the master and everything holding its stderr exited).
    closed: bool,
}

#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    cv: Condvar,
}

/// A running `ringmaster` master (and, through it, its workers).
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Log>,
    stdout_rx: Mutex<Receiver<String>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Starts the binary with `--bind 127.0.0.1:0` followed by `args`, and waits
    /// (at most [`START_TIMEOUT`]) for `listening on ADDR (...)`. A test that
    /// names its own `--bind` in `args` (`[::1]:0`, say: IPv6) gets that one
    /// alone; [`Server::addr`] is then where it listens (`[::]:0` gives `[::]:PORT`:
    /// connect to `[::1]:PORT` or `127.0.0.1:PORT`).
    pub fn start(args: &[&str]) -> Server {
        Server::start_under(&[], args)
    }

    /// [`Server::start`] with the binary run by a wrapper that execs it, e.g.
    /// `&["prlimit", "--nofile=64:64"]` (the master's pid stays the child's).
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Server {
        let cmd = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut cmd = Command::new(program);
                cmd.args(wrapper_args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        Server::start_command(cmd, args)
    }

    /// [`Server::start`] with `env` added to the master's environment (which
    /// its workers inherit), e.g. `RINGMASTER_FAULT=exit-at-start`.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied());
        Server::start_command(cmd, args)
    }

    /// [`Server::start`] running `binary` (a copy of the one under test, say).
    pub fn start_binary(binary: &std::path::Path, args: &[&str]) -> Server {
        Server::start_command(Command::new(binary), args)
    }

    /// [`Server::start`] with a command prepared by the caller (environment,
    /// `pre_exec`): `--bind 127.0.0.1:0` (unless `args` name one) and `args`
    /// are added here.
    pub fn start_command(cmd: Command, args: &[&str]) -> Server {
        let mut server = Server::launch(cmd, args);
        server.wait_listening(args);
        server
    }

    /// [`Server::start_command`] without waiting for the listening line
    /// (for a master expected to fail before it: see [`Server::wait_exit`]).
    pub fn launch(mut cmd: Command, args: &[&str]) -> Server {
        if !args.contains(&"--bind") {
            cmd.arg("--bind").arg("127.0.0.1:0");
        }
        cmd.args(args);
        // The suite runs once per backend (scripts/test.sh): the harness picks it
        // unless the test names one itself.
        if let Some(backend) = test_backend() {
            if !args.contains(&"--backend") {
                cmd.arg("--backend").arg(backend);
            }
        }
        Server::launch_as_is(cmd)
    }

    /// [`Server::start_command`] for a program that takes no arguments (an
    /// example whose settings come from its environment, which refuses any
    /// flag): `cmd` is run as it is.
    pub fn start_without_flags(cmd: Command) -> Server {
        let mut server = Server::launch_as_is(cmd);
        server.wait_listening(&[]);
        server
    }

    /// [`Server::launch`] with `cmd` run as it is, no flag added.
    pub fn launch_as_is(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let pid = child.id();

        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().expect("stderr piped");
        {
            let (log, log_at_end) = (Arc::clone(&log), Arc::clone(&log));
            let on_line = move |line: String| {
                eprintln!("[ringmaster {pid}] {line}");
                let mut st = log.state.lock().unwrap();
                st.lines.push(json_log_message(&line).unwrap_or_else(|| log_message(&line).to_string()));
                st.raw.push(line);
                log.cv.notify_all();
                true
            };
            let at_end = move || {
                let mut st = log_at_end.state.lock().unwrap();
                st.closed = true;
                log_at_end.cv.notify_all();
            };
            spawn_line_reader(format!("ringmaster-{pid}-stderr"), stderr, on_line, at_end);
        }

        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let on_line = move |line: String| {
            eprintln!("[ringmaster {pid} stdout] {line}");
            tx.send(line).is_ok()
        };
        spawn_line_reader(format!("ringmaster-{pid}-stdout"), stdout, on_line, || {});

        Server { child, addr: "127.0.0.1:0".parse().unwrap(), log, stdout_rx: Mutex::new(rx), exit: None }
    }

    /// Waits (at most [`START_TIMEOUT`]) for `listening on ADDR (...)` and
    /// takes the address; `args` are for the message when it never comes.
    fn wait_listening(&mut self, args: &[&str]) {
        let line = self.try_wait_for_log_from(0, |l| l.starts_with("listening on "), START_TIMEOUT).map(|(_, l)| l);
        let line = match line {
            Some(l) => l,
            None => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "ringmaster did not print its listening line within {:?} (args {:?}, exit status {:?}); log:\n{}",
                    START_TIMEOUT,
                    args,
                    status,
                    self.raw_log().join("\n")
                );
            }
        };
        self.addr = parse_listening_line(&line).unwrap_or_else(|| panic!("cannot parse listening line {line:?}"));
    }

    /// The address the master really listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A snapshot of the message of every stderr line so far: what follows
    /// `LEVEL NAME[PID]: ` (a line not in the log format is kept whole).
    pub fn log(&self) -> Vec<String> {
        self.log.state.lock().unwrap().lines.clone()
    }

    /// A snapshot of every stderr line so far as printed (without the line end).
    pub fn raw_log(&self) -> Vec<String> {
        self.log.state.lock().unwrap().raw.clone()
    }

    /// Number of stderr lines so far; pass it to [`Server::wait_for_log_from`] to
    /// wait only for lines printed after now.
    pub fn log_len(&self) -> usize {
        self.log.state.lock().unwrap().lines.len()
    }

    /// Waits until the message of some stderr line (from the first one on)
    /// satisfies `pred`; returns it. Panics with the whole log on timeout.
    pub fn wait_for_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_for_log_from(0, pred, timeout).1
    }

    /// Like [`Server::wait_for_log`] but only looks at lines with index >= `from`;
    /// returns (index, line).
    pub fn wait_for_log_from(&self, from: usize, pred: impl Fn(&str) -> bool, timeout: Duration) -> (usize, String) {
        match self.try_wait_for_log_from(from, pred, timeout) {
            Some(hit) => hit,
            None => panic!(
                "no matching log line within {:?} (from line {}); log:\n{}",
                timeout,
                from,
                self.raw_log().join("\n")
            ),
        }
    }

    /// Non-panicking form of [`Server::wait_for_log_from`].
    pub fn try_wait_for_log_from(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let mut st = self.log.state.lock().unwrap();
        let mut next = from;
        loop {
            while next < st.lines.len() {
                if pred(&st.lines[next]) {
                    return Some((next, st.lines[next].clone()));
                }
                next += 1;
            }
            if st.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self.log.cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Worker pids named by `worker N started (pid P, ...)` log lines, in log order
    /// (restarted workers included).
    pub fn logged_worker_pids(&self) -> Vec<u32> {
        self.log().iter().filter_map(|l| parse_worker_started(l).map(|(_, pid)| pid)).collect()
    }

    /// Sends `sig` (e.g. `libc::SIGUSR1`) to the master.
    pub fn signal(&self, sig: i32) {
        procs::kill(self.pid(), sig);
    }

    /// Sends SIGUSR1 and returns the next stats line from stdout, parsed.
    /// Panics if none arrives within [`STATS_TIMEOUT`].
    pub fn stats(&self) -> serde_json::Value {
        self.stats_within(STATS_TIMEOUT)
    }

    /// [`Server::stats`], waiting up to `timeout` for the line.
    pub fn stats_within(&self, timeout: Duration) -> serde_json::Value {
        let rx = self.stdout_rx.lock().unwrap();
        while rx.try_recv().is_ok() {} // drop stale lines
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v.get("workers").is_some() => return v,
                    _ => eprintln!("ignoring non-stats stdout line {line:?}"),
                },
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no stats line on stdout within {timeout:?} of SIGUSR1; log:\n{}", self.raw_log().join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed while waiting for stats; log:\n{}", self.raw_log().join("\n"))
                }
            }
        }
    }

    /// Waits for the next line on stdout (e.g. the final stats line after SIGTERM).
    pub fn next_stdout_line(&self, timeout: Duration) -> Option<String> {
        self.stdout_rx.lock().unwrap().recv_timeout(timeout).ok()
    }

    /// Sums of (accepted, requests, live) over all workers, from [`Server::stats`].
    pub fn stats_totals(&self) -> (u64, u64, u64) {
        stats_totals(&self.stats())
    }

    /// Waits until the stats line lists `n` workers, each with a pid and in
    /// state "ready". The master prints its listening line once every worker is
    /// ready or after 2 s, whichever comes first, and connections that arrive
    /// before a worker is ready go to the others: tests that look at how
    /// connections are spread must wait for this. Returns the stats. Each
    /// look may take what is left of `timeout`: a master starting hundreds
    /// of workers on a busy machine can take longer than [`STATS_TIMEOUT`]
    /// to write one line (512 workers on epoll under heavy load: over 5 s once).
    pub fn wait_workers_ready(&self, n: usize, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.stats_within(deadline.saturating_duration_since(Instant::now()).max(STATS_TIMEOUT));
            let ws = v["workers"].as_array().cloned().unwrap_or_default();
            let ready =
                ws.len() == n && ws.iter().all(|w| w["pid"].as_u64().is_some_and(|p| p > 0) && w["state"] == "ready");
            if ready {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("workers not all ready within {timeout:?}: {v}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the master to exit; panics (leaving cleanup to Drop) on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exit {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.exit = Some(s);
                    self.wait_for_log_end(LOG_END_AFTER_EXIT);
                    return s;
                }
                Ok(None) => {}
                Err(e) => panic!("try_wait: {e}"),
            }
            if Instant::now() >= deadline {
                panic!(
                    "ringmaster (pid {}) did not exit within {:?}; log:\n{}",
                    self.pid(),
                    timeout,
                    self.raw_log().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `limit`) until stderr reaches its end: once the master
    /// has exited, its last lines may still be in the pipe, not yet read. (A
    /// worker that outlives the master keeps stderr open: then `limit` ends it.)
    fn wait_for_log_end(&self, limit: Duration) {
        let st = self.log.state.lock().unwrap();
        let _ = self.log.cv.wait_timeout_while(st, limit, |st| !st.closed).unwrap();
    }

    /// Is the master still running?
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.exit = Some(s);
                false
            }
            _ => true,
        }
    }

    /// Opens a client connection to the server.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    fn wait_exit_quiet(&mut self, timeout: Duration) -> bool {
        if self.exit.is_some() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exit = Some(s);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let mut workers: BTreeSet<u32> = self.logged_worker_pids().into_iter().collect();
        if self.exit.is_none() {
            workers.extend(children_of(self.pid()));
            let _ = procs::send_signal(self.pid(), libc::SIGTERM);
            if !self.wait_exit_quiet(Duration::from_secs(5)) {
                eprintln!("ringmaster (pid {}) ignored SIGTERM for 5 s: SIGKILL", self.pid());
                workers.extend(children_of(self.pid()));
                let _ = self.child.kill();
                let _ = self.wait_exit_quiet(Duration::from_secs(5));
            }
        }
        // Workers should follow their master; give them a moment, then make sure.
        workers.extend(self.logged_worker_pids());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let alive: Vec<u32> = workers.iter().copied().filter(|&p| procs::alive_ours(p)).collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for p in alive {
                    eprintln!("worker pid {p} outlived its master: SIGKILL");
                    let _ = procs::send_signal(p, libc::SIGKILL);
                }
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads `pipe` line by line in a thread called `name`, passing each line
/// (without its line end) to `on_line` until it returns false; at EOF (or a read
/// error) calls `at_end`.
fn spawn_line_reader(
    name: String,
    pipe: impl Read + Send + 'static,
    mut on_line: impl FnMut(String) -> bool + Send + 'static,
    at_end: impl FnOnce() + Send + 'static,
) {
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string();
                        if !on_line(line) {
                            return;
                        }
                    }
                }
            }
            at_end();
        })
        .expect("spawn a pipe reader thread");
}

/// One line of the log, `2026-12-01T21:58:31.123Z INFO  ringmaster[1234]: message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The time, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `INFO`, `WARN` or `ERROR`.
    pub level: &'a str,
    /// The program's name: `ringmaster`, or an example's own.
    pub program: &'a str,
    /// The pid of the process that wrote the line.
    pub pid: u32,
    /// What follows `]: `.
    pub message: &'a str,
}

/// Parses a log line strictly: an RFC 3339 UTC time with exactly three
/// fractional digits and `Z`, one space, the level padded to five columns
/// (`INFO `, `WARN `, `ERROR`), one space, `NAME[PID]: ` (NAME the program's,
/// `ringmaster` for the binary), the message.
pub fn parse_log_line(line: &str) -> Option<LogLine<'_>> {
    let b = line.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    if b.len() < shape.len() {
        return None;
    }
    let fits = shape.iter().zip(b).all(|(&want, &got)| if want == b'd' { got.is_ascii_digit() } else { got == want });
    if !fits {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> u64 { line[r].parse().unwrap() };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, se, ms) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let unix_ms = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000) + ms;
    let rest = line[shape.len()..].strip_prefix(' ')?;
    let level = ["INFO ", "WARN ", "ERROR"].into_iter().find(|l| rest.starts_with(l))?;
    let rest = rest[level.len()..].strip_prefix(' ')?;
    let (head, message) = rest.split_once("]: ")?;
    let (program, pid) = head.rsplit_once('[')?;
    if program.is_empty() || program.starts_with(' ') || pid.is_empty() || !pid.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(LogLine { unix_ms, level: level.trim_end(), program, pid: pid.parse().ok()?, message })
}

/// The message of a `--log-format json` line, if it is one.
pub fn json_log_message(line: &str) -> Option<String> {
    if !line.starts_with("{\"time\":") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(v["message"].as_str()?.to_string())
}

/// The message of a log line; a line not in the log format (a panic, say) whole.
pub fn log_message(line: &str) -> &str {
    parse_log_line(line).map_or(line, |l| l.message)
}

/// Parses `listening on 127.0.0.1:41234 (mode rr, 2 workers)`, a log message.
pub fn parse_listening_line(message: &str) -> Option<SocketAddr> {
    let rest = message.strip_prefix("listening on ")?;
    let addr = rest.split(' ').next()?;
    addr.parse().ok()
}

/// Parses `worker 1 started (pid 1234, cpu 0)`, a log message, into (id, pid).
pub fn parse_worker_started(message: &str) -> Option<(u32, u32)> {
    let rest = message.strip_prefix("worker ")?;
    let (id, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("started (pid ")?;
    let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((id.parse().ok()?, pid.parse().ok()?))
}

/// Sums of (accepted, requests, live) over the workers of a stats line, and
/// what workers removed by a scale-down counted (its `retired`).
pub fn stats_totals(v: &serde_json::Value) -> (u64, u64, u64) {
    let ws = v["workers"].as_array().unwrap_or_else(|| panic!("stats without workers array: {v}"));
    let retired = |k: &str| v["retired"][k].as_u64().unwrap_or_else(|| panic!("stats without retired {k}: {v}"));
    let mut t = (retired("accepted"), retired("requests"), 0);
    for w in ws {
        let f = |k: &str| w[k].as_u64().unwrap_or_else(|| panic!("stats worker without numeric {k}: {v}"));
        t.0 += f("accepted");
        t.1 += f("requests");
        t.2 += f("live");
    }
    t
}

/// The CPUs this test process may run on (sched_getaffinity(2)), in order:
/// the set the master pins its workers to when started from here.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0, "sched_getaffinity: {}", io::Error::last_os_error());
    // SAFETY: CPU_ISSET only reads the set, for CPU numbers inside it.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// The CPU the master pins worker `id` (1-based) to by default: the id-th
/// allowed CPU, wrapping around.
pub fn expected_cpu(id: usize) -> usize {
    let cpus = allowed_cpus();
    cpus[(id - 1) % cpus.len()]
}

/// Child pids of `pid` (all its threads), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP client side
// ---------------------------------------------------------------------------

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All values of headers named `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// Does the response carry `Connection: <token>` (case-insensitive token)?
    pub fn has_connection(&self, token: &str) -> bool {
        self.header_all("connection").iter().flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one CRLF-terminated line (without the CRLF). EOF before any byte gives
/// `UnexpectedEof`; a line ending in a bare LF is `InvalidData`.
fn read_crlf_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response line"));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(bad(format!("response line not terminated by CRLF: {:?}", String::from_utf8_lossy(&buf))));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|e| bad(format!("non-UTF-8 response line: {e}")))
}

/// Reads one response, honouring Content-Length (responses without one are read
/// to EOF). 1xx responses have no body.
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    read_response_ex(r, false)
}

/// Reads the response to a HEAD request: headers only, whatever Content-Length says.
pub fn read_head_response(r: &mut impl BufRead) -> io::Result<Response> {
    read_response_ex(r, true)
}

/// Reads one response; `head` = it answers a HEAD request (no body).
pub fn read_response_ex(r: &mut impl BufRead, head: bool) -> io::Result<Response> {
    let status_line = read_crlf_line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let code = parts.next().unwrap_or("");
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("bad status code in {status_line:?}")));
    }
    let status: u16 = code.parse().unwrap();
    let reason = parts.next().unwrap_or("").to_string();

    let mut headers = Vec::new();
    loop {
        let line = match read_crlf_line(r) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside response headers"))
            }
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| bad(format!("bad response header line {line:?}")))?;
        if k.is_empty() || k.contains(' ') {
            return Err(bad(format!("bad response header name in {line:?}")));
        }
        headers.push((k.to_string(), v.trim().to_string()));
        if headers.len() > 100 {
            return Err(bad("more than 100 response headers".into()));
        }
    }
    let mut resp = Response { version, status, reason, headers, body: Vec::new() };
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    match resp.header("content-length") {
        Some(cl) => {
            let n: usize = cl.parse().map_err(|_| bad(format!("bad response Content-Length {cl:?}")))?;
            if n > 64 << 20 {
                return Err(bad(format!("absurd response Content-Length {n}")));
            }
            let mut body = vec![0; n];
            r.read_exact(&mut body)?;
            resp.body = body;
        }
        None => {
            if resp.header("transfer-encoding").is_some() {
                return Err(bad("chunked responses are not expected from ringmaster".into()));
            }
            r.read_to_end(&mut resp.body)?;
        }
    }
    Ok(resp)
}

/// Opens a TCP connection to `addr` with [`IO_TIMEOUT`] read/write timeouts and
/// TCP_NODELAY (so that each write leaves as its own segment).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A connection with a small receive buffer and, with `mss`, small segments,
/// both set before connect, so that the window stays small and the server's
/// initial send buffer (ten segments' worth: 1.3 MB of loopback's 64 KiB
/// ones) too: the server's answers back up quickly, and a few hundred such
/// clients that do not read hold little of the kernel's TCP memory.
pub fn connect_narrow(addr: SocketAddr, rcvbuf: i32, mss: Option<i32>) -> TcpStream {
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 expected: {addr}") };
    let set = |fd: i32, level: i32, name: i32, value: i32, what: &str| {
        // SAFETY: setsockopt reads one c_int from `value`, which lives through the call.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                std::ptr::addr_of!(value).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "{what}: {}", std::io::Error::last_os_error());
    };
    // SAFETY: socket() takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, rcvbuf, "SO_RCVBUF");
    if let Some(mss) = mss {
        set(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, mss, "TCP_MAXSEG");
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: connect reads a sockaddr_in of the size given, from this frame.
    let r = unsafe {
        libc::connect(fd, std::ptr::addr_of!(sin).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    assert_eq!(r, 0, "connect {addr}: {}", std::io::Error::last_os_error());
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Asserts the peer has closed the connection within `timeout`: a read returns 0
/// (EOF) or ECONNRESET. Unread buffered bytes or fresh data are a failure.
/// Returns how long it took.
pub fn expect_closed_within(r: &mut BufReader<TcpStream>, timeout: Duration) -> Duration {
    assert!(
        r.buffer().is_empty(),
        "expected the server to close, but unread bytes were buffered: {:?}",
        String::from_utf8_lossy(r.buffer())
    );
    let start = Instant::now();
    let s = r.get_mut();
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            panic!("server did not close the connection within {timeout:?}");
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                panic!("expected the server to close, got {n} more bytes: {:?}", String::from_utf8_lossy(&buf[..n]))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                panic!("server did not close the connection within {timeout:?}")
            }
            Err(e) => panic!("expected a close, got error {e}"),
        }
    }
    let took = start.elapsed();
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    took
}

/// [`expect_closed_within`] with a 5 s bound.
pub fn expect_closed(r: &mut BufReader<TcpStream>) -> Duration {
    expect_closed_within(r, IO_TIMEOUT)
}

/// Asserts nothing arrives and the connection stays open for `d`.
pub fn expect_silent_open(r: &mut BufReader<TcpStream>, d: Duration) {
    assert!(r.buffer().is_empty(), "unexpected buffered bytes: {:?}", String::from_utf8_lossy(r.buffer()));
    let s = r.get_mut();
    s.set_read_timeout(Some(d)).unwrap();
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => panic!("server closed the connection, expected it to stay open for {d:?}"),
        Ok(n) => panic!("unexpected {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        Err(e) => panic!("expected the connection to stay open, got {e}"),
    }
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// A client connection: a buffered reader over the stream, plus writes.
pub struct Conn {
    pub r: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        Conn { r: BufReader::with_capacity(64 * 1024, connect(addr)) }
    }

    /// A new connection that got a `200` to one `GET` within `timeout`
    /// (to connect, and then to answer); `None` when refused, cut or slower.
    pub fn answered_within(addr: SocketAddr, timeout: Duration) -> Option<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        let mut conn = Conn { r: BufReader::new(stream) };
        conn.stream().set_read_timeout(Some(timeout)).ok()?;
        (conn.try_send(GET).is_ok() && conn.try_read().is_ok_and(|r| r.status == 200)).then_some(conn)
    }

    pub fn stream(&self) -> &TcpStream {
        self.r.get_ref()
    }

    /// Writes all of `bytes` (one write call where the kernel allows).
    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Like [`Conn::send`] but returns the error (the server may have closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.r.get_mut().write_all(bytes)
    }

    /// Writes each of `pieces`, each one read by `server` before the next
    /// is written (acknowledged by its kernel, then its side's receive queue
    /// seen empty), so that each is a read of its own; stops at a write the
    /// server's close refuses.
    pub fn send_reads<'a>(&mut self, server: SocketAddr, pieces: impl IntoIterator<Item = &'a [u8]>) {
        let client = self.stream().local_addr().map(|a| a.port()).expect("client port");
        for piece in pieces {
            if self.try_send(piece).is_err() {
                return;
            }
            let arrived = eventually(IO_TIMEOUT, || sockets::unacknowledged(self.stream()) == 0);
            // `None`: the server has closed the connection.
            let unread = || sockets::unread_by_server(server.port(), client).is_none_or(|n| n == 0);
            let read = arrived && eventually(IO_TIMEOUT, unread);
            assert!(read, "the server did not read a write of {} bytes", piece.len());
        }
    }

    /// Sends `bytes` one byte per write, sleeping `gap` between bytes.
    pub fn send_bytewise(&mut self, bytes: &[u8], gap: Duration) {
        for b in bytes {
            self.send(std::slice::from_ref(b));
            if !gap.is_zero() {
                thread::sleep(gap);
            }
        }
    }

    pub fn read(&mut self) -> Response {
        read_response(&mut self.r).unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    pub fn read_head(&mut self) -> Response {
        read_head_response(&mut self.r).unwrap_or_else(|e| panic!("reading a HEAD response: {e}"))
    }

    pub fn try_read(&mut self) -> io::Result<Response> {
        read_response(&mut self.r)
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, req: &[u8]) -> Response {
        self.send(req);
        self.read()
    }

    /// Sends a request and checks the standard 200 answer (keep-alive).
    pub fn get_ok(&mut self) -> Response {
        let resp = self.request(GET);
        check_ok(&resp);
        assert!(!resp.has_connection("close"), "keep-alive response carries Connection: close: {resp:?}");
        resp
    }

    /// Sends `req`, after which the server must close (it asks for `Connection:
    /// close`, or is HTTP/1.0 without keep-alive): checks the standard 200 says
    /// `Connection: close`, then that the server closes. Returns the response.
    pub fn request_ok_then_closed(&mut self, req: &[u8]) -> Response {
        let resp = self.request(req);
        check_ok(&resp);
        assert!(
            resp.has_connection("close"),
            "a response the server closes after must say Connection: close: {resp:?}"
        );
        self.expect_closed();
        resp
    }

    /// Reads the answers to pipelined requests, one per entry of `heads` (true:
    /// a HEAD, answered without a body), and checks each is the standard 200
    /// that keeps the connection open.
    pub fn read_ok_answers(&mut self, heads: &[bool]) {
        for (i, &head) in heads.iter().enumerate() {
            let r = if head { read_head_response(&mut self.r) } else { read_response(&mut self.r) };
            let r = r.unwrap_or_else(|e| panic!("response {i} of {}: {e}", heads.len()));
            if head {
                check_ok_head(&r);
            } else {
                check_ok(&r);
            }
            assert!(!r.has_connection("close"), "response {i}: {r:?}");
        }
    }

    pub fn expect_closed(&mut self) -> Duration {
        expect_closed(&mut self.r)
    }

    pub fn expect_closed_within(&mut self, timeout: Duration) -> Duration {
        expect_closed_within(&mut self.r, timeout)
    }

    pub fn expect_silent_open(&mut self, d: Duration) {
        expect_silent_open(&mut self.r, d)
    }

    pub fn shutdown_write(&self) {
        let _ = self.r.get_ref().shutdown(Shutdown::Write);
    }
}

// ---------------------------------------------------------------------------
// Checks of ringmaster's answers
// ---------------------------------------------------------------------------

/// Checks the headers every ringmaster response carries (any status): HTTP/1.1,
/// `Server: ringmaster`, a well-formed and current `Date`, `Content-Type:
/// text/plain`, exactly one Content-Length.
pub fn check_common_headers(resp: &Response) {
    assert_eq!(resp.version, "HTTP/1.1", "response version: {resp:?}");
    assert_eq!(resp.header_all("server"), vec!["ringmaster"], "Server header: {resp:?}");
    let dates = resp.header_all("date");
    assert_eq!(dates.len(), 1, "exactly one Date header expected: {resp:?}");
    check_date(dates[0]);
    assert_eq!(resp.header("content-type"), Some("text/plain"), "Content-Type: {resp:?}");
    assert_eq!(resp.header_all("content-length").len(), 1, "exactly one Content-Length: {resp:?}");
    assert!(resp.header("transfer-encoding").is_none(), "unexpected Transfer-Encoding: {resp:?}");
}

/// Checks the standard `200 OK` with body `hello world\n` (not for HEAD).
pub fn check_ok(resp: &Response) {
    assert_eq!(resp.status, 200, "expected 200, got {resp:?}");
    assert_eq!(resp.reason, "OK", "reason phrase: {resp:?}");
    check_common_headers(resp);
    assert_eq!(resp.header("content-length"), Some("12"), "Content-Length: {resp:?}");
    assert_eq!(resp.body, BODY, "body: {resp:?}");
}

/// Checks the standard answer to HEAD: as [`check_ok`], with an empty body but
/// Content-Length 12.
pub fn check_ok_head(resp: &Response) {
    assert_eq!(resp.status, 200, "expected 200, got {resp:?}");
    check_common_headers(resp);
    assert_eq!(resp.header("content-length"), Some("12"), "HEAD keeps Content-Length: {resp:?}");
    assert!(resp.body.is_empty());
}

/// Checks an error answer: `HTTP/1.1 <code> <reason>`, the common headers,
/// `Connection: close`, body `<reason>\n` with a matching Content-Length.
pub fn check_error(resp: &Response, code: u16) {
    assert_eq!(resp.status, code, "expected {code}, got {resp:?}");
    assert!(!resp.reason.is_empty(), "error without a reason phrase: {resp:?}");
    check_common_headers(resp);
    assert!(resp.has_connection("close"), "error response must carry Connection: close: {resp:?}");
    let want = format!("{}\n", resp.reason);
    assert_eq!(resp.body_str(), want, "error body must be the reason phrase and a newline: {resp:?}");
    assert_eq!(resp.header("content-length"), Some(want.len().to_string().as_str()), "Content-Length: {resp:?}");
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
pub fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 29
        || &s[3..5] != ", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &s[25..] != " GMT"
    {
        return None;
    }
    let wday = DAYS.iter().position(|d| *d == &s[0..3])?;
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as u64 + 1;
    let year = num(12..16)?;
    let (h, mi, se) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3 in DAYS)
    if (days + 3).rem_euclid(7) as usize != wday {
        return None;
    }
    Some(days as u64 * 86400 + h * 3600 + mi * 60 + se)
}

/// Days from 1970-01-01 to the Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: u64, month: u64, day: u64) -> i64 {
    let (y, m) = if month <= 2 { (year as i64 - 1, month as i64 + 9) } else { (year as i64, month as i64 - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn days_in_month(year: u64, month: u64) -> u64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// How much sooner than a timeout a worker may act on it: it reads
/// CLOCK_MONOTONIC_COARSE, which lags the true time by up to its resolution
/// (one kernel tick, from clock_getres), in whole milliseconds (1 ms more).
/// A test that measures a timeout from before what starts the worker's
/// clock sees at least the timeout less this.
pub fn worker_clock_slack() -> Duration {
    let mut res = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_getres writes one timespec, which `res` is.
    let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    assert_eq!(r, 0, "clock_getres: {}", io::Error::last_os_error());
    Duration::new(res.tv_sec as u64, res.tv_nsec as u32) + Duration::from_millis(1)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Asserts `s` is a well-formed IMF-fixdate not far from now: the server's
/// clock, not a fixed or stale one. The bound is loose, since a test may
/// read an answer long after it was made (one that stops and continues
/// processes; a busy machine); that the Date follows the clock second by
/// second is `http_keepalive::response_headers_server_and_date`'s to check.
pub fn check_date(s: &str) {
    let t = parse_imf_fixdate(s).unwrap_or_else(|| panic!("Date header {s:?} is not an IMF-fixdate"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(t.abs_diff(now) <= 120, "Date header {s:?} is {} s away from now", t as i64 - now as i64);
}

/// `n` copies of `req` concatenated.
pub fn repeat(req: &[u8], n: usize) -> Vec<u8> {
    req.repeat(n)
}

/// Encodes `body` as chunks of at most `chunk` bytes with the final 0 chunk.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod self_tests {
    use super::*;

    #[test]
    fn imf_fixdate() {
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn parse_lines() {
        assert_eq!(
            parse_listening_line("listening on 127.0.0.1:41234 (mode rr, 2 workers)"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(parse_worker_started("worker 1 started (pid 1234, cpu 0)"), Some((1, 1234)));
        assert_eq!(parse_worker_started("worker 12 started (pid 99, cpu none)"), Some((12, 99)));
    }

    #[test]
    fn log_lines() {
        let line = "2026-12-01T21:58:31.123Z INFO  ringmaster[1234]: worker 1 started (pid 1235, cpu 0)";
        let parsed = parse_log_line(line).unwrap();
        assert_eq!(
            parsed,
            LogLine {
                unix_ms: 1_796_162_311_123,
                level: "INFO",
                program: "ringmaster",
                pid: 1234,
                message: "worker 1 started (pid 1235, cpu 0)"
            }
        );
        assert_eq!(log_message(line), "worker 1 started (pid 1235, cpu 0)");
        assert_eq!(parse_log_line("1970-01-01T00:00:00.000Z ERROR ringmaster[1]: ").map(|l| l.unix_ms), Some(0));
        let leap = parse_log_line("2000-02-29T23:59:59.999Z WARN  ringmaster[7]: x").map(|l| (l.unix_ms, l.level));
        assert_eq!(leap, Some((951_868_799_999, "WARN")));
        let own = parse_log_line("2026-12-01T21:58:31.123Z INFO  my app: x[42]: a [b]: c").map(|l| (l.program, l.pid));
        assert_eq!(own, Some(("my app: x", 42)), "a program's own name");
        for bad in [
            "ringmaster: worker 1 started (pid 1235, cpu 0)",
            "2026-12-01T21:58:31.123Z ringmaster[1234]: no level",
            "2026-12-01T21:58:31.123Z DEBUG ringmaster[1234]: unknown level",
            "2026-12-01T21:58:31.123Z INFO ringmaster[1234]: level not padded",
            "2026-12-01T21:58:31Z INFO  ringmaster[1234]: seconds only",
            "2026-12-01T21:58:31.123+00:00 INFO  ringmaster[1234]: not Z",
            "2026-12-01 21:58:31.123Z INFO  ringmaster[1234]: no T",
            "2026-13-01T21:58:31.123Z INFO  ringmaster[1234]: month 13",
            "2026-02-29T21:58:31.123Z INFO  ringmaster[1234]: not a leap year",
            "2026-12-01T24:00:00.000Z INFO  ringmaster[1234]: hour 24",
            "2026-12-01T21:58:31.123Z INFO  ringmaster[]: no pid",
            "2026-12-01T21:58:31.123Z INFO  ringmaster[12a]: bad pid",
            "2026-12-01T21:58:31.123Z INFO  ringmaster: no pid",
            "2026-12-01T21:58:31.123Z INFO  [1234]: no name",
            "2026-12-01T21:58:31.123Z INFO   ringmaster[1234]: a space before the name",
            "2026-12-01T21:58:31.123Z  INFO  ringmaster[1]: two spaces",
        ] {
            assert_eq!(parse_log_line(bad), None, "{bad}");
            assert_eq!(log_message(bad), bad);
        }
    }

    #[test]
    fn response_reader() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let a = read_response(&mut r).unwrap();
        assert_eq!(a.body, b"abc");
        assert_eq!(a.header("x"), Some("y"));
        let b = read_head_response(&mut r).unwrap();
        assert!(b.body.is_empty());
        assert_eq!(read_response(&mut r).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
