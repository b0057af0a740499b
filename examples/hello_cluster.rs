//! Node's classic cluster example in Rust: one worker per CPU, each
//! answering `hello world` on port 8000 (or `$PORT`).
//!
//! ```sh
//! cargo run --release --example hello_cluster
//! curl http://127.0.0.1:8000/
//! ```

use std::process::ExitCode;

use ringmaster::{available_cpus, cli, Cluster, Handler, Mode, Request, Response};

/// The handler: the same answer to every request.
struct Hello;

impl Handler for Hello {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain").body(b"hello world\n");
    }
}

/// What `--help` says: the example takes no arguments, its port from `$PORT`.
const ABOUT: &str = "Node's classic cluster example: one worker per CPU, each answering `hello world`.\n\
                     Takes no arguments; the environment sets:\n  \
                     PORT  the port on 127.0.0.1 [default: 8000]";

fn main() -> ExitCode {
    // `--help` says the above; any argument is refused (it would be ignored).
    if let Err(code) = cli::parse_no_arguments(ABOUT) {
        return code;
    }
    // Runs in the master and in every worker, as a Node script does.
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_string());
    Cluster::new().bind(format!("127.0.0.1:{port}")).workers(available_cpus()).mode(Mode::RoundRobin).serve(|| Hello)
}
