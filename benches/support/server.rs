//! One running `ringmaster` master (and through it its workers), started for a
//! bench: bound to `127.0.0.1:0`, its address read from the log, its stats
//! line fetched with `SIGUSR1`, and always stopped when dropped (or, should
//! the bench process die, by `PR_SET_PDEATHSIG`).

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under bench (built by cargo for the bench profile).
pub const BIN: &str = env!("CARGO_BIN_EXE_ringmaster");

/// How long the master gets to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the master gets to answer `SIGUSR1` with a stats line.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the master gets to drain and exit on `SIGTERM` before `SIGKILL`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker's row of the stats line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// Worker id, 1..=N.
    pub id: u64,
    /// Its process id.
    pub pid: u64,
    /// The CPU it is pinned to, `None` with `--no-pin`.
    pub cpu: Option<u64>,
    /// Connections it took.
    pub accepted: u64,
    /// Requests it answered.
    pub requests: u64,
    /// Connections it has open.
    pub live: u64,
}

/// A server's counters at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The stats line's rows.
    pub workers: Vec<WorkerStats>,
    /// utime + stime of the master and those workers, in seconds.
    pub cpu_seconds: f64,
}

/// A running master started by [`Server::start`].
pub struct Server {
    /// Short name of the configuration (the bench function's id).
    pub label: &'static str,
    /// Where it listens.
    pub addr: SocketAddrV4,
    child: Child,
    stdout: Receiver<String>,
}

impl Server {
    /// Starts `ringmaster --bind 127.0.0.1:0 --workers 2 <args>` and waits for
    /// its `listening on` line.
    pub fn start(label: &'static str, args: &[&str]) -> io::Result<Server> {
        let mut cmd = Command::new(BIN);
        cmd.args(["--bind", "127.0.0.1:0", "--workers", "2"]).args(args);
        Server::start_command(label, cmd)
    }

    /// Starts example `name` (built here first: cargo builds no examples for
    /// benches) with two workers in `rr` mode on a free port.
    pub fn start_example(label: &'static str, name: &str) -> io::Result<Server> {
        let built = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !built.success() {
            return Err(io::Error::other(format!("cargo build --release --example {name}: {built}")));
        }
        let dir = std::path::Path::new(BIN).parent().ok_or_else(|| io::Error::other("BIN has no directory"))?;
        let mut cmd = Command::new(dir.join("examples").join(name));
        cmd.env("PORT", "0").env("MODE", "rr").env("WORKERS", "2");
        Server::start_command(label, cmd)
    }

    fn start_command(label: &'static str, mut cmd: Command) -> io::Result<Server> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the hook runs between fork and exec and only calls prctl(2),
        // which is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // The master gets SIGTERM if the bench dies without dropping us.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("cannot spawn {program}: {e}")))?;
        let pid = child.id();

        let stderr = child.stderr.take().ok_or_else(|| io::Error::other("stderr not piped"))?;
        let (addr_tx, addr_rx) = mpsc::channel();
        thread::Builder::new().name(format!("rm-{label}-stderr")).spawn(move || {
            // Keep draining the log so the master never blocks on a full pipe;
            // show it, it is a few lines per run (start, worker exits).
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{label} {pid}] {line}");
                if let Some(rest) = log_message(&line).strip_prefix("listening on ") {
                    let _ = addr_tx.send(rest.split(' ').next().unwrap_or("").to_string());
                }
            }
        })?;

        let stdout = child.stdout.take().ok_or_else(|| io::Error::other("stdout not piped"))?;
        let (stats_tx, stats_rx) = mpsc::channel();
        thread::Builder::new().name(format!("rm-{label}-stdout")).spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if stats_tx.send(line).is_err() {
                    break;
                }
            }
        })?;

        let mut server = Server { label, addr: SocketAddrV4::new([127, 0, 0, 1].into(), 0), child, stdout: stats_rx };
        let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{label}: no `listening on` line within {START_TIMEOUT:?} (exit status {status:?})"),
                ));
            }
        };
        server.addr = addr
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{label}: bad address {addr:?}: {e}")))?;
        Ok(server)
    }

    /// Sends `SIGUSR1` and parses the stats line that answers it.
    pub fn stats(&self) -> io::Result<Vec<WorkerStats>> {
        // Lines printed earlier (none are expected) would be stale.
        while self.stdout.try_recv().is_ok() {}
        self.signal(libc::SIGUSR1)?;
        let line = match self.stdout.recv_timeout(STATS_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: no stats line within {STATS_TIMEOUT:?} of SIGUSR1", self.label),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{}: stdout closed", self.label)))
            }
        };
        parse_stats(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: stats line {line:?}: {e}", self.label))
        })
    }

    /// The stats line and the CPU time (user + system, seconds) the master and
    /// the workers it lists have used so far, read from `/proc`.
    pub fn snapshot(&self) -> io::Result<Snapshot> {
        let workers = self.stats()?;
        let mut cpu = cpu_seconds(u64::from(self.child.id()))?;
        for worker in &workers {
            cpu += cpu_seconds(worker.pid)?;
        }
        Ok(Snapshot { workers, cpu_seconds: cpu })
    }

    fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) on our own child's pid (not yet reaped, so not reused).
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{}: kill({pid}, {signal}): {e}", self.label)));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("[{}] did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it", self.label);
        // Its workers see the channel close and exit on their own.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `{"mode":..,"workers":[{"id":1,"pid":..,"cpu":0,"accepted":..,"requests":..,"live":..}]}`.
fn parse_stats(line: &str) -> Result<Vec<WorkerStats>, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let workers = value.get("workers").and_then(|w| w.as_array()).ok_or("no `workers` array")?;
    let field = |w: &serde_json::Value, name: &str| w.get(name).and_then(|v| v.as_u64()).ok_or(format!("no `{name}`"));
    workers
        .iter()
        .map(|w| {
            Ok(WorkerStats {
                id: field(w, "id")?,
                pid: field(w, "pid")?,
                cpu: w.get("cpu").and_then(|v| v.as_u64()),
                accepted: field(w, "accepted")?,
                requests: field(w, "requests")?,
                live: field(w, "live")?,
            })
        })
        .collect()
}

/// utime + stime of process `pid` in seconds (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_seconds(pid: u64) -> io::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<u64> = after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    if ticks.len() != 2 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path}: no utime/stime in {stat:?}")));
    }
    // SAFETY: sysconf takes no pointers.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 { per_second as f64 } else { 100.0 };
    Ok((ticks[0] + ticks[1]) as f64 / per_second)
}

/// The message of a log line, `2026-12-01T21:58:31.123Z INFO  ringmaster[1234]: message`
/// (what follows `]: `); a line in another format whole.
fn log_message(line: &str) -> &str {
    line.split_once(" ringmaster[").and_then(|(_, rest)| rest.split_once("]: ")).map_or(line, |(_, message)| message)
}
