//! [`Cluster`]: Node's `cluster` and `http.createServer` in one builder. The
//! same program is the master and every worker: the master re-executes it
//! for each worker, the code before [`Cluster::serve`] runs in both, and
//! `serve` becomes the master's supervision loop or the worker's event loop.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_balancer::cpus::{allowed_cpus, default_workers};
use ringmaster_balancer::log::{counted, LogFormat};
use ringmaster_balancer::privileges;
use ringmaster_balancer::title::{set_process_title, set_thread_name, ProcessNames};
use ringmaster_balancer::{
    identity_from_env, run_master, MasterConfig, Mode, SteerChoice, WorkerExec, WorkerMessageHook,
};
use ringmaster_engine::cgroup::cpu_quota;
use ringmaster_engine::{BackendChoice, EngineConfig, Handler};

use crate::address::ListenAddr;
use crate::worker_serve::serve_as_worker;

/// A cluster of worker processes serving one handler, one per CPU unless
/// told otherwise. (The README's library example, word for word:
/// `readme_example.rs` holds them to it, and this one is compiled.)
///
/// ```no_run
/// use ringmaster::{available_cpus, Cluster, Handler, Mode, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
///         res.header("Content-Type", "text/plain").body(b"hello world\n");
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     Cluster::new()
///         .bind("127.0.0.1:8000")
///         .workers(available_cpus())
///         .mode(Mode::RoundRobin)
///         .serve(|| Hello) // one handler value per worker process
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Cluster {
    master: MasterConfig,
    /// `--workers` was not given: one per CPU of the chosen set.
    default_workers: bool,
    user: Option<String>,
    group: Option<String>,
    log_format: LogFormat,
    /// A problem with a setting, reported by [`Cluster::serve`].
    invalid: Option<String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// Listens on `127.0.0.1:8080` in `rr` mode with one pinned worker per
    /// CPU this process may run on, on io_uring where it can (else epoll).
    pub fn new() -> Cluster {
        let engine = EngineConfig::default();
        Cluster {
            master: MasterConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                mode: Mode::RoundRobin,
                steer: SteerChoice::Auto,
                workers: 1,
                cpus: None,
                pin: true,
                backlog: 4096,
                shutdown_timeout: engine.drain_timeout,
                control: None,
                metrics: None,
                drain_delay: Duration::ZERO,
                watchdog: Some(Duration::from_secs(30)),
                backend: BackendChoice::Auto,
                engine,
                // Captured before anything can rewrite them (the master's title does).
                exec: WorkerExec {
                    args: std::env::args_os().skip(1).collect(),
                    credentials: None,
                    // Set by `serve`: in a worker, `argv[0]` is its title.
                    names: ProcessNames::default(),
                },
                program: std::env::args_os().next(),
                on_worker_message: None,
            },
            default_workers: true,
            user: None,
            group: None,
            log_format: LogFormat::Text,
            invalid: None,
        }
    }

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
    /// [`Handler::on_message`].
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

    /// The name the cluster's processes go by in `ps` and `top` (`NAME:
    /// master`, `NAME: worker N`, thread names `NAME`): by default the file
    /// name the program was started as. The `ringmaster` binary keeps its
    /// own name whatever its file is called, as nginx's processes are
    /// `nginx: ...` wherever it lies (scripts find them by it).
    pub fn name(mut self, name: impl Into<OsString>) -> Self {
        self.master.program = Some(name.into());
        self
    }

    /// The arguments workers are started with (this process's own by default).
    pub fn worker_args(mut self, args: Vec<OsString>) -> Self {
        self.master.exec.args = args;
        self
    }

    /// Serves until stopped: in the master, starts and supervises the
    /// workers; in a worker, makes its handler with `make` and runs the
    /// event loop until it has drained. Returns the process's exit code
    /// (errors are logged as one line first). A panic in `make` (a
    /// handler that cannot be made) ends that worker with code 70; before
    /// any worker has been ready the master then stops and exits 1 rather
    /// than restart workers that would fail the same way.
    pub fn serve<H, F>(self, make: F) -> ExitCode
    where
        H: Handler,
        F: FnOnce() -> H,
    {
        match self.run(make) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                ringmaster_balancer::log!(error: "{message}");
                // A master's last line may wait behind a stderr nobody drains.
                ringmaster_balancer::log::sink::finish(Duration::from_secs(1));
                ExitCode::from(code)
            }
        }
    }

    fn run<H: Handler>(mut self, make: impl FnOnce() -> H) -> Result<(), (u8, String)> {
        // Master and workers alike: every line from here on in the chosen format.
        ringmaster_balancer::log::set_format(self.log_format);
        if let Some(identity) = identity_from_env() {
            let identity = identity.map_err(|e| (1, format!("worker: {e}")))?;
            let names = ProcessNames::of_worker(self.master.program.as_deref());
            return serve_as_worker(identity, &names, &self.master.engine, make);
        }
        ringmaster_balancer::panic_hook::install(None);
        if let Some(problem) = self.invalid.take().or_else(|| engine_problem(&self.master.engine)) {
            return Err((2, problem));
        }
        if self.default_workers {
            self.master.workers = default_workers(self.master.cpus.as_deref(), &allowed_cpus());
            if self.master.cpus.is_none() {
                self.limit_workers_to_the_cpu_quota();
            }
        }
        // Names are resolved once, here; workers get the numeric ids.
        let credentials =
            privileges::resolve(self.user.as_deref(), self.group.as_deref()).map_err(|e| (2, e.to_string()))?;
        if let Some(credentials) = &credentials {
            privileges::check_can_switch(credentials).map_err(|e| (1, e.to_string()))?;
        }
        self.master.exec.credentials = credentials;
        // The program's own name (`myapp: master`), as its user knows it.
        let names = ProcessNames::of_master(self.master.program.as_deref());
        let original: Vec<OsString> = std::env::args_os().collect();
        let titled = set_thread_name(&names.master_thread_name())
            .and_then(|()| set_process_title(&names.master_title(), &original));
        self.master.exec.names = names;
        if let Err(e) = titled {
            ringmaster_balancer::log!(warn: "cannot set the master's title: {e}");
        }
        run_master(self.master).map_err(|e| (1, e.to_string()))
    }

    /// Under a CPU limit (a container's) with time for fewer CPUs than the
    /// process may run on: one worker per CPU of time, unpinned, since
    /// pinning them to the first CPUs would stack every such container's
    /// workers on the same few CPUs of the node.
    fn limit_workers_to_the_cpu_quota(&mut self) {
        let Some(quota) = cpu_quota() else { return };
        if quota.workers() >= self.master.workers {
            return;
        }
        ringmaster_balancer::log!(
            info: "a CPU limit of {:.2} CPUs ({}): {}, unpinned (--workers or --cpus choose otherwise)",
            quota.cpus,
            quota.file.display(),
            counted(quota.workers(), "worker"),
        );
        self.master.workers = quota.workers();
        self.master.pin = false;
    }
}

/// What is wrong with `engine`, set with [`Cluster::engine`] or
/// [`Cluster::configure`]: the command line's ranges for what it sets, and
/// what the loops need of the rest. Until 2026-12-06 nothing was checked:
/// `recv_buffers` 1000 or `ring_entries` 0 had every worker exit 1 at start
/// and be restarted forever, `recv_buffer_size` 0 workers that answered
/// nothing, `max_conns` 0 a `503` to every client.
fn engine_problem(engine: &EngineConfig) -> Option<String> {
    let problem = |what: String| Some(format!("engine: {what}"));
    use crate::cli::{LEAST_HEADER, MOST_CONNS_OR_HEADER};
    let within =
        |value: usize, least: i64| i64::try_from(value).is_ok_and(|v| (least..=MOST_CONNS_OR_HEADER).contains(&v));
    if !within(engine.max_conns, 1) {
        return problem(format!(
            "max_conns {} is not from 1 to {MOST_CONNS_OR_HEADER} (--max-conns)",
            engine.max_conns
        ));
    }
    if !within(engine.max_header, LEAST_HEADER) {
        return problem(format!(
            "max_header {} is not from {LEAST_HEADER} to {MOST_CONNS_OR_HEADER} (--max-header)",
            engine.max_header
        ));
    }
    for (name, value) in [
        ("header_timeout", engine.header_timeout),
        ("idle_timeout", engine.idle_timeout),
        ("body_timeout", engine.body_timeout),
        ("drain_timeout", engine.drain_timeout),
    ] {
        if value.is_zero() {
            return problem(format!("{name} is zero"));
        }
    }
    if engine.ring_entries == 0 {
        return problem("ring_entries is zero".to_string());
    }
    if !engine.recv_buffers.is_power_of_two() {
        return problem(format!("recv_buffers {} is not a power of two", engine.recv_buffers));
    }
    if engine.recv_buffer_size == 0 {
        return problem("recv_buffer_size is zero".to_string());
    }
    if engine.accepts_outstanding == 0 {
        return problem("accepts_outstanding is zero".to_string());
    }
    if let Some(path) = &engine.health_path {
        if let Err(e) = crate::cli::parse_health_path(path) {
            return problem(format!("health_path: {e}"));
        }
    }
    None
}

/// How many CPUs this process may run on: Node's `os.availableParallelism()`.
/// A container's CPU limit does not lower it; the default worker count of a
/// [`Cluster`] without [`Cluster::workers`] honours that limit.
pub fn available_cpus() -> usize {
    allowed_cpus().len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workers' drain and the master's patience for it are one setting,
    /// whichever builder method set it last.
    #[test]
    fn a_drain_timeout_set_through_the_engine_is_the_masters_too() {
        let cluster = Cluster::new().shutdown_timeout(Duration::from_secs(2)).configure(|e| {
            e.drain_timeout = Duration::from_secs(10);
        });
        assert_eq!(cluster.master.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(cluster.master.engine.drain_timeout, Duration::from_secs(10));
        let engine = EngineConfig { drain_timeout: Duration::from_secs(7), ..EngineConfig::default() };
        let cluster = Cluster::new().shutdown_timeout(Duration::from_secs(2)).engine(engine);
        assert_eq!(cluster.master.shutdown_timeout, Duration::from_secs(7));
        let cluster = Cluster::new().configure(|e| e.max_body = 1).shutdown_timeout(Duration::from_secs(3));
        assert_eq!(
            (cluster.master.shutdown_timeout, cluster.master.engine.drain_timeout),
            (Duration::from_secs(3), Duration::from_secs(3))
        );
    }

    /// What the loops cannot run with is refused before any worker starts.
    #[test]
    fn an_engine_the_loops_cannot_run_with_is_refused() {
        assert_eq!(engine_problem(&EngineConfig::default()), None);
        type Change = fn(&mut EngineConfig);
        let bad: [(&str, Change); 7] = [
            ("recv_buffers 1000", |e| e.recv_buffers = 1000),
            ("recv_buffers 0", |e| e.recv_buffers = 0),
            ("ring_entries", |e| e.ring_entries = 0),
            ("recv_buffer_size", |e| e.recv_buffer_size = 0),
            ("max_conns 0", |e| e.max_conns = 0),
            ("header_timeout", |e| e.header_timeout = Duration::ZERO),
            ("health_path", |e| e.health_path = Some("healthz".to_string())),
        ];
        for (what, change) in bad {
            let mut engine = EngineConfig::default();
            change(&mut engine);
            let problem = engine_problem(&engine).unwrap_or_default();
            assert!(problem.starts_with("engine: ") && problem.contains(what), "{what}: {problem:?}");
        }
    }

    /// Zero turns the watchdog off, as `--watchdog 0` does.
    #[test]
    fn a_zero_watchdog_is_none() {
        assert_eq!(Cluster::new().watchdog(Some(Duration::ZERO)).master.watchdog, None);
        let limit = Some(Duration::from_secs(5));
        assert_eq!(Cluster::new().watchdog(limit).master.watchdog, limit);
    }

    /// The builder refuses what `--health-path` refuses: a path no request
    /// can name would leave every probe to the handler.
    #[test]
    fn a_health_path_that_is_not_a_path_is_refused() {
        for bad in ["", "healthz", "/health z", "/h\x7f"] {
            let cluster = Cluster::new().health_path(bad);
            assert!(cluster.invalid.as_deref().is_some_and(|e| e.starts_with("health_path: ")), "{bad:?}");
        }
        let cluster = Cluster::new().health_path("/healthz");
        assert_eq!((cluster.invalid, cluster.master.engine.health_path.as_deref()), (None, Some("/healthz")));
    }

    /// The builder takes the addresses `--bind` and `--metrics` take: an
    /// IPv6 zone by an interface's name as well as by its index, through
    /// the same parser. Until 2026-12-07 a name was refused (`bind: failed
    /// to lookup address information: Name or service not known`).
    #[test]
    fn an_ipv6_zone_may_name_its_interface() {
        let lo = nix::net::if_::if_nametoindex("lo").expect("lo exists everywhere");
        let at =
            |port| SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().expect("an address"), port, 0, lo));
        let cluster = Cluster::new().bind("[fe80::1%lo]:80").metrics(String::from("[fe80::1%lo]:9100"));
        assert_eq!((cluster.invalid, cluster.master.bind, cluster.master.metrics), (None, at(80), Some(at(9100))));
        let cluster = Cluster::new().bind(format!("[fe80::1%{lo}]:80"));
        assert_eq!((cluster.invalid, cluster.master.bind), (None, at(80)));
        // What `ToSocketAddrs` takes is taken as before.
        assert_eq!(Cluster::new().bind(at(81)).master.bind, at(81));
        assert_eq!(Cluster::new().bind(("127.0.0.1", 8000)).master.bind, "127.0.0.1:8000".parse().expect("v4"));
        assert_eq!(Cluster::new().bind("localhost:8000").master.bind.port(), 8000);
        let cluster = Cluster::new().bind("[fe80::1%ringmaster-none]:80");
        let invalid = cluster.invalid.unwrap_or_default();
        assert!(invalid.starts_with("bind: ") && invalid.contains("no interface named 'ringmaster-none'"), "{invalid}");
    }
}
