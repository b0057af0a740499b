//! [`Cluster`]: Node's `cluster` and `http.createServer` in one builder. The
//! same program is the master and every worker: the master re-executes it
//! for each worker, the code before [`Cluster::serve`] runs in both, and
//! `serve` becomes the master's supervision loop or the worker's event loop.
//!
//! Here: the cluster, its defaults and its serve; its settings are
//! `settings.rs`, the check of an engine set through the builder
//! `engine_problem.rs`.

mod engine_problem;
mod settings;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use ringmaster_balancer::cpus::{allowed_cpus, default_workers};
use ringmaster_balancer::log::{counted, LogFormat};
use ringmaster_balancer::privileges;
use ringmaster_balancer::title::{set_process_title, set_thread_name, ProcessNames};
use ringmaster_balancer::{identity_from_env, run_master, MasterConfig, Mode, SteerChoice, WorkerExec};
use ringmaster_engine::cgroup::cpu_quota;
use ringmaster_engine::{BackendChoice, EngineConfig, Handler};

use crate::ctl::{ctl, CtlArgs};
use crate::worker_serve::serve_as_worker;
use engine_problem::engine_problem;

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
    /// `NAME ctl ...` ([`crate::cli::parse_program`]): what `serve` runs instead.
    ctl: Option<CtlArgs>,
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
            ctl: None,
        }
    }

    /// Serves until stopped: in the master, starts and supervises the
    /// workers; in a worker, makes its handler with `make` and runs the
    /// event loop until it has drained. Returns the process's exit code
    /// (errors are logged as one line first). A panic in `make` (a
    /// handler that cannot be made) ends that worker with code 70; before
    /// any worker has been ready the master then stops and exits 1 rather
    /// than restart workers that would fail the same way.
    ///
    /// A cluster [`cli::parse_program`](crate::cli::parse_program) parsed
    /// from `NAME ctl PATH COMMAND...` serves nothing: it sends the command
    /// to that master and prints the reply (its errors under the cluster's
    /// [`Cluster::name`]), and returns `ctl`'s code.
    pub fn serve<H, F>(self, make: F) -> ExitCode
    where
        H: Handler,
        F: FnOnce() -> H,
    {
        if let Some(args) = &self.ctl {
            return ctl(&args.of_program(&self.program_name()));
        }
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
        let identity = identity_from_env();
        // The program's own name (`myapp: master`, `myapp: worker N`), as its
        // user knows it; in a worker `argv[0]` is its title.
        let names = match identity {
            Some(_) => ProcessNames::of_worker(self.master.program.as_deref()),
            None => ProcessNames::of_master(self.master.program.as_deref()),
        };
        // Master and workers alike: every line from here on in the chosen
        // format, under the same name as the titles (`myapp[PID]:`).
        ringmaster_balancer::log::set_format(self.log_format);
        ringmaster_balancer::log::set_program(names.program());
        if let Some(identity) = identity {
            let identity = identity.map_err(|e| (1, format!("worker: {e}")))?;
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
        let original: Vec<OsString> = std::env::args_os().collect();
        let titled = set_thread_name(&names.master_thread_name())
            .and_then(|()| set_process_title(&names.master_title(), &original));
        self.master.exec.names = names;
        if let Err(e) = titled {
            ringmaster_balancer::log!(warn: "cannot set the master's title: {e}");
        }
        run_master(self.master).map_err(|e| (1, e.to_string()))
    }

    /// The command line said `NAME ctl ...` ([`cli::parse_program`](crate::cli::parse_program)):
    /// [`Cluster::serve`] will run that `ctl` and serve nothing. Code the
    /// program runs between the parse and `serve` runs for a `ctl` too; set-up
    /// only a server needs (a child process, a thread of its own) can ask here
    /// first. The closure given to `serve` never runs for a `ctl`.
    pub fn is_ctl(&self) -> bool {
        self.ctl.is_some()
    }

    /// The program's name as the cluster has it now (one given after the
    /// parse too), as a master's: the file's, or [`Cluster::name`]'s.
    fn program_name(&self) -> String {
        ProcessNames::of_master(self.master.program.as_deref()).program().to_string()
    }

    /// This cluster, to run `args` instead of serving (`NAME ctl ...`).
    pub(crate) fn run_ctl(self, args: CtlArgs) -> Cluster {
        Cluster { ctl: Some(args), ..self }
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

/// How many CPUs this process may run on: Node's `os.availableParallelism()`.
/// A container's CPU limit does not lower it; the default worker count of a
/// [`Cluster`] without [`Cluster::workers`] honours that limit.
pub fn available_cpus() -> usize {
    allowed_cpus().len().max(1)
}
