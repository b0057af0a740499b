//! A few routes, as a small application would have them:
//!
//! - `GET /`: plain text;
//! - `GET /json`: a JSON body written without allocating;
//! - `POST /echo`: the request body back (by length or chunked);
//! - `GET /host`: the host the request is for, as a handler routing by
//!   host should read it (`req.host()`);
//! - `GET /peer`: the client's address and port (`req.peer_addr()`, which
//!   the handler asks for with `wants_peer_addr`), e.g. `127.0.0.1:54321`,
//!   or `[::ffff:127.0.0.1]:54321` for an IPv4 client of `HOST=[::]`;
//! - `GET /panic`: the handler panics — that request gets `500` and its
//!   connection closes; the worker and its other connections serve on;
//! - `GET /recovered`: the handler catches a panic of its own and answers;
//!   both in a build that unwinds (without `--release`: the release profile
//!   has `panic = "abort"`, where either panic ends the worker, with its
//!   connections, and the master starts another);
//! - anything else: `404`;
//! - `ringmaster ctl PATH send panic` (with `$CONTROL`, the control
//!   socket's path): `on_message` panics, which loses that line for each
//!   worker; they serve on (in a build that unwinds, as above).
//!
//! ```sh
//! cargo run --release --example router
//! curl http://127.0.0.1:8000/json
//! curl --data 'hi there' http://127.0.0.1:8000/echo
//! ```
//! `$HOST` (`[::1]` or `[::]` for IPv6, in brackets), `$PORT`, `$MODE` (`rr` or `shared`), `$WORKERS`
//! and `$CONTROL` change the defaults; with `$MAKE_PANICS` set, making each
//! worker's handler panics (its worker exits 70, and the master stops);
//! `$PANIC_IN` names a handler method that panics instead: `wants_peer_addr`
//! or `fixed_body` (asked as the worker starts: it exits 70, and the master
//! stops), or `drop` (as the worker exits: it exits 70 instead of 0).

use std::fmt::Write as _;
use std::process::ExitCode;

use ringmaster::{available_cpus, cli, worker_id, Cluster, Handler, Mode, Request, Response};

/// The application: a worker's routes and its one counter.
pub struct Router {
    worker: usize,
    requests: u64,
    /// The method that panics (`$PANIC_IN`), if any.
    panics_in: Option<String>,
}

impl Router {
    /// The routes of worker `worker`.
    pub fn new(worker: usize) -> Router {
        Router { worker, requests: 0, panics_in: None }
    }

    /// The same, with `method` panicking (`$PANIC_IN`).
    fn panicking_in(mut self, method: Option<String>) -> Router {
        self.panics_in = method;
        self
    }
}

impl Handler for Router {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        self.requests += 1;
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/") => {
                res.header("Content-Type", "text/plain").body(b"ringmaster router\n");
            }
            ("GET" | "HEAD", "/json") => {
                res.header("Content-Type", "application/json");
                let _ = write!(res, r#"{{"worker":{},"requests":{}}}"#, self.worker, self.requests);
            }
            // An absolute URI's authority wins over the `Host` field (RFC
            // 9112 §3.2.2): `host()` reads it so, `header("host")` would not.
            ("GET" | "HEAD", "/host") => {
                let host = req.host().unwrap_or(b"(none)");
                res.header("Content-Type", "text/plain").body(host).body(b"\n");
            }
            // As Node's `req.socket.remoteAddress` and `remotePort`: the
            // engine reads it once per connection, for this handler only
            // because `wants_peer_addr` says so.
            ("GET" | "HEAD", "/peer") => {
                res.header("Content-Type", "text/plain");
                let _ = match req.peer_addr() {
                    Some(peer) => writeln!(res, "{peer}"),
                    None => writeln!(res, "(unknown)"),
                };
            }
            ("POST", "/echo") => {
                let kind = req.header("content-type").unwrap_or(b"application/octet-stream");
                res.header("Content-Type", kind).body(req.body());
            }
            ("GET", "/panic") => panic!("GET /panic: a handler's panic costs only its request"),
            ("GET", "/recovered") => {
                let caught = std::panic::catch_unwind(|| panic!("GET /recovered: caught by the handler itself"));
                let body: &[u8] = if caught.is_err() { b"recovered\n" } else { b"not caught\n" };
                res.header("Content-Type", "text/plain").body(body);
            }
            _ => {
                res.status(404).header("Content-Type", "text/plain").body(b"not found\n");
            }
        }
    }

    fn wants_peer_addr(&self) -> bool {
        if self.panics_in.as_deref() == Some("wants_peer_addr") {
            panic!("PANIC_IN=wants_peer_addr");
        }
        true
    }

    fn fixed_body(&self) -> Option<&[u8]> {
        if self.panics_in.as_deref() == Some("fixed_body") {
            panic!("PANIC_IN=fixed_body");
        }
        None
    }

    fn on_message(&mut self, message: &str) {
        if message == "panic" {
            panic!("on_message panic: a panic here loses only the line");
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if self.panics_in.as_deref() == Some("drop") {
            panic!("PANIC_IN=drop");
        }
    }
}

/// What `--help` says: the example takes no arguments, its settings from the environment.
const ABOUT: &str = "A few routes: /, /json, POST /echo, /host, /peer, /panic, /recovered; 404 otherwise.\n\
                     Takes no arguments; the environment sets:\n  \
                     HOST         the address, [::1] or [::] for IPv6 [default: 127.0.0.1]\n  \
                     PORT         the port [default: 8000]\n  \
                     MODE         rr or shared [default: rr]\n  \
                     WORKERS      worker processes [default: one per CPU]\n  \
                     CONTROL      a control socket's path [default: none]\n  \
                     MAKE_PANICS  set: making each worker's handler panics\n  \
                     PANIC_IN     wants_peer_addr, fixed_body or drop: that method panics";

fn main() -> ExitCode {
    // `--help` says the above; any argument is refused (it would be ignored).
    if let Err(code) = cli::parse_no_arguments(ABOUT) {
        return code;
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    let mode = if std::env::var("MODE").is_ok_and(|m| m == "shared") { Mode::Shared } else { Mode::RoundRobin };
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or_else(available_cpus);
    // `HOST=[::1]` (brackets: IPv6) or `HOST=[::]` (dual-stack) for IPv6.
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_string());
    let mut cluster = Cluster::new().bind(format!("{host}:{port}")).workers(workers).mode(mode);
    if let Ok(path) = std::env::var("CONTROL") {
        cluster = cluster.control(path);
    }
    // `$MAKE_PANICS`: making the handler panics, as a program's that cannot
    // open what its handler needs: each worker exits with code 70, and the
    // master, none of its workers ready, stops (exit 1).
    let make_panics = std::env::var_os("MAKE_PANICS").is_some();
    let panics_in = std::env::var("PANIC_IN").ok();
    cluster.serve(move || {
        if make_panics {
            panic!("MAKE_PANICS is set: the router is not made");
        }
        Router::new(worker_id().unwrap_or(0)).panicking_in(panics_in)
    })
}
