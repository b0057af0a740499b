//! The builder's settings: each returns the [`Cluster`] with one thing set.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_balancer::log::LogFormat;
use ringmaster_balancer::{Mode, SteerChoice, WorkerMessageHook};
use ringmaster_engine::{BackendChoice, EngineConfig};

use super::Cluster;
use crate::address::ListenAddr;

impl Cluster {
    /// The address to listen on (the first one `addr` resolves to). Text
    /// takes what `--bind` takes, an IPv6 zone by its interface's name
    /// included (`"[fe80::1%eth0]:8080"`), and host names (looked up): see
    /// [`ListenAddr`].
    pub fn bind(mut self, addr: impl ListenAddr) -> Self {
        match addr.listen_addr() {
            Ok(addr) => self.master.bind = addr,
            Err(e) => self.invalid = Some(format!("bind: {e}")),
        }
        self
    }

    /// How many worker processes to run.
    pub fn workers(mut self, count: usize) -> Self {
        self.master.workers = count;
        self.default_workers = false;
        self
    }

    /// How connections reach workers.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.master.mode = mode;
        self
    }

    /// How `reuseport` chooses a worker's listener: by live load with an
    /// eBPF program, by the kernel's hash, or by load where it can.
    ///
    /// ```no_run
    /// use ringmaster::{Cluster, Mode, Steer};
    ///
    /// let cluster = Cluster::new().mode(Mode::Reuseport).steer(Steer::Hash);
    /// # drop(cluster);
    /// ```
    pub fn steer(mut self, steer: SteerChoice) -> Self {
        self.master.steer = steer;
        self
    }

    /// The CPUs workers are pinned to, in order (workers wrap around them).
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.master.cpus = Some(cpus);
        self
    }

    /// Pin each worker to one CPU (the default) or let the scheduler move them.
    pub fn pin(mut self, pin: bool) -> Self {
        self.master.pin = pin;
        self
    }

    /// The kernel interface: `Auto` (io_uring if allowed, else epoll), `Uring` or `Epoll`.
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.master.backend = backend;
        self
    }

    /// A control socket (mode 0600) for `ringmaster ctl PATH status|reload|scale N|upgrade|send TEXT|stop`.
    pub fn control(mut self, path: impl Into<PathBuf>) -> Self {
        self.master.control = Some(path.into());
        self
    }

    /// Serve Prometheus metrics (text format 0.0.4) at `http://ADDR/metrics`
    /// from the master, on a listener of its own.
    /// `addr` as [`Cluster::bind`] takes it.
    pub fn metrics(mut self, addr: impl ListenAddr) -> Self {
        match addr.listen_addr() {
            Ok(addr) => self.master.metrics = Some(addr),
            Err(e) => self.invalid = Some(format!("metrics: {e}")),
        }
        self
    }

    /// A path every worker answers itself, ahead of the handler: `GET PATH`
    /// gets `200 ready` while it serves, `503 draining` once it drains or is
    /// a lame duck (`HEAD PATH` the same status, without the body), for a
    /// load balancer's or Kubernetes' probe. `PATH` starts with `/` and has
    /// no spaces or control characters, as `--health-path` (else
    /// [`Cluster::serve`] says so and exits 2; until 2026-12-06 any text
    /// was taken, and one no request can name left the probe unanswered).
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        match crate::cli::parse_health_path(&path.into()) {
            Ok(path) => self.master.engine.health_path = Some(path),
            Err(e) => self.invalid = Some(format!("health_path: {e}")),
        }
        self
    }

    /// After `SIGTERM` or `stop`, keep every worker serving this long as a
    /// lame duck (the health path answers `503`, see
    /// [`Cluster::health_path`]) before the drain begins, so load balancers
    /// stop sending first.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.master.drain_delay = delay;
        self
    }

    /// How the master and the workers write their log lines: text for
    /// people, or one JSON object per line for log shippers.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// The listen backlog.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.master.backlog = backlog;
        self
    }

    /// Time workers get to finish their connections on shutdown.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.master.shutdown_timeout = timeout;
        self.master.engine.drain_timeout = timeout;
        self
    }

    /// Kill and replace a worker whose loop stands still this long (`None`,
    /// or zero as `--watchdog 0`: never). The loop stands still while a
    /// handler runs: a limit shorter than the slowest handler kills its
    /// worker with every connection it holds (until 2026-12-06 zero meant
    /// at once: a handler taking 400 ms had its worker killed).
    pub fn watchdog(mut self, limit: Option<Duration>) -> Self {
        self.master.watchdog = limit.filter(|limit| !limit.is_zero());
        self
    }

    /// Run workers as this user (the master binds as root first).
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(name.into());
        self
    }

    /// Run workers with this group.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }

    /// Every worker's settings at once: limits, timeouts, buffers. Its
    /// `drain_timeout` is the [`Cluster::shutdown_timeout`] too.
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.master.engine = engine;
        self.master.shutdown_timeout = self.master.engine.drain_timeout;
        self
    }

    /// Every worker's settings, to change one: `.configure(|e| e.max_body = 4096)`.
    /// Its `drain_timeout` is the [`Cluster::shutdown_timeout`] too: the
    /// master gives a draining worker that long (and a second) before it
    /// kills it. Until 2026-12-06 the master kept its own, and a
    /// `drain_timeout` set here past it had workers killed inside their drain.
    pub fn configure(mut self, change: impl FnOnce(&mut EngineConfig)) -> Self {
        change(&mut self.master.engine);
        self.master.shutdown_timeout = self.master.engine.drain_timeout;
        self
    }

    /// Called in the master with a worker's id and each line it sends with
    /// [`send_to_master`](crate::send_to_master), as Node's
    /// `worker.on('message')`; without it, the master logs the line. The
    /// other way, `ringmaster ctl PATH send TEXT` reaches every worker's
    /// [`Handler::on_message`](crate::Handler::on_message).
    ///
    /// The hook runs on the master's loop: it should return quickly. A
    /// panic in it loses that line, is said, and the master serves on, as a
    /// handler's costs only its request (in a program built with
    /// `panic = "unwind"`, Rust's default; with `"abort"` the master ends,
    /// and its workers drain and exit).
    pub fn on_worker_message(mut self, hook: impl Fn(usize, &str) + Send + Sync + 'static) -> Self {
        self.master.on_worker_message = Some(WorkerMessageHook(Arc::new(hook)));
        self
    }

    /// The name the cluster's processes go by: their titles in `ps`
    /// (`NAME: master`, `NAME: worker N`), their thread names in `top`,
    /// `ps -C` and `pgrep -x` (`NAME`, cut to 15 bytes), and the head of
    /// every log line, the master's and the workers' (`NAME[PID]:`). By
    /// default the file name the program was started as (`myapp` for
    /// `./target/release/myapp`). The `ringmaster` binary keeps its own name
    /// whatever its file is called, as nginx's processes are `nginx: ...`
    /// wherever it lies (scripts find them by it). A program on
    /// [`cli::parse_program`](crate::cli::parse_program) may name its cluster
    /// after the parse: its `ctl` (`NAME ctl: ...`, `NAME top:`), which
    /// [`Cluster::serve`] runs, says this name too (its `--help` and usage
    /// errors, printed by the parse, say the file's name, the command typed).
    pub fn name(mut self, name: impl Into<OsString>) -> Self {
        self.master.program = Some(name.into());
        self
    }

    /// The arguments workers are started with (this process's own by default).
    pub fn worker_args(mut self, args: Vec<OsString>) -> Self {
        self.master.exec.args = args;
        self
    }
}
