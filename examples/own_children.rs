//! A program that does more than serve: before the cluster it starts a
//! thread of its own (a logger, a runtime) and a child process (a sidecar),
//! and once the cluster has stopped it waits for that child and prints how
//! it exited. The master must leave both alone: the thread gets no signal
//! meant for the cluster, a panic on it is the program's own, and the child
//! is the program's to reap. With `$PANIC_SOCKET`, a Unix socket path, each
//! connection there starts a thread that panics; the program joins it,
//! catching the panic, and answers `caught` (in a build that unwinds:
//! without `--release`, whose profile has `panic = "abort"`, where the
//! panic ends the master and, with it, the cluster). With `$WORKER_SIDECAR`
//! set, each worker too starts a child before it serves (a sidecar that
//! sleeps), which must inherit none of the descriptors its master passed it.
//!
//! ```sh
//! cargo run --release --example own_children
//! ```
//! `$PORT`, `$MODE` (`rr` or `shared`), `$WORKERS` and `$CONTROL` (the
//! control socket's path) change the defaults.

use std::io::Write as _;
use std::os::unix::net::UnixListener;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;

use ringmaster::{cli, is_primary, Cluster, Handler, Mode, Request, Response};

/// The handler: the same answer to every request.
struct Hello;

impl Handler for Hello {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain").body(b"hello world\n");
    }
}

/// What `--help` says: the example takes no arguments, its settings from the environment.
const ABOUT: &str = "A cluster beside a thread and a child process of the program's own.\n\
                     Takes no arguments; the environment sets:\n  \
                     PORT            the port on 127.0.0.1 [default: 8000]\n  \
                     MODE            rr or shared [default: rr]\n  \
                     WORKERS         worker processes [default: 2]\n  \
                     CONTROL         a control socket's path [default: none]\n  \
                     PANIC_SOCKET    a Unix socket: each connection makes a thread of the program's panic\n  \
                     WORKER_SIDECAR  set: each worker starts a child of its own";

fn main() -> ExitCode {
    // `--help` says the above; any argument is refused (it would be ignored).
    if let Err(code) = cli::parse_no_arguments(ABOUT) {
        return code;
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2);
    let mode = if std::env::var("MODE").is_ok_and(|m| m == "shared") { Mode::Shared } else { Mode::RoundRobin };
    let mut cluster = Cluster::new().bind(format!("127.0.0.1:{port}")).workers(workers).mode(mode);
    if let Ok(path) = std::env::var("CONTROL") {
        cluster = cluster.control(path);
    }
    if !is_primary() {
        if std::env::var_os("WORKER_SIDECAR").is_some() {
            // Left to outlive the worker, as a sidecar would: it holds no lane
            // or listener of the cluster's, so the cluster cannot tell.
            let sidecar = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            // One write for the line: the workers share the master's stderr,
            // and `eprintln!` may write a line in pieces that another's split.
            let line = match sidecar {
                Ok(child) => format!("own_children: worker sidecar started (pid {})\n", child.id()),
                Err(e) => format!("own_children: cannot start the worker's sidecar: {e}\n"),
            };
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        return cluster.serve(|| Hello);
    }
    // A thread that outlives the cluster's start, as a runtime's would.
    let (_keep, idle) = mpsc::channel::<()>();
    std::thread::spawn(move || idle.recv());
    if let Ok(path) = std::env::var("PANIC_SOCKET") {
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("own_children: cannot listen on {path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let joined = std::thread::spawn(|| panic!("own_children: a panic of the program's own")).join();
                if joined.is_err() {
                    eprintln!("own_children: the thread's panic was caught");
                    let _ = conn.write_all(b"caught\n");
                }
            }
        });
    }
    // A child that exits at once; the program reaps it after serving.
    let mut child = match Command::new("sh").args(["-c", "exit 7"]).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("own_children: cannot start the child: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("own_children: child started (pid {})", child.id());
    let code = cluster.serve(|| Hello);
    match child.wait() {
        Ok(status) => eprintln!("own_children: child {status}"),
        Err(e) => eprintln!("own_children: cannot wait for the child: {e}"),
    }
    code
}
