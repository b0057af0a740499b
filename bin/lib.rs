//! ringmaster as a library: your own handler on every core, with Node's
//! `cluster` API in Rust. The master owns the listening socket and balances
//! connections over worker processes (one per CPU, pinned); each worker
//! answers them with your [`Handler`] on io_uring or epoll, allocating
//! nothing per request unless your handler does.
//!
//! | Node | ringmaster |
//! |---|---|
//! | `cluster.isPrimary` | [`is_primary()`] / [`role()`] |
//! | `cluster.worker.id` | [`worker_id()`] |
//! | `os.availableParallelism()` | [`available_cpus()`] |
//! | `cluster.fork()` per CPU | [`Cluster::workers`] (the master re-executes the program) |
//! | `cluster.schedulingPolicy` | [`Cluster::mode`] |
//! | `http.createServer(fn).listen(port)` | [`Cluster::bind`] + [`Cluster::serve`] |
//! | `(req, res) => ...` | [`Handler::handle`] with [`Request`] and [`Response`] |
//! | `req.socket.remoteAddress`, `remotePort` | [`Request::peer_addr`] (asked for with [`Handler::wants_peer_addr`]) |
//! | `process.send(msg)` in a worker | [`send_to_master`] (a line of text) |
//! | `worker.on('message')` in the primary | [`Cluster::on_worker_message`] |
//! | `worker.send(msg)` to every worker | `ringmaster ctl PATH send TEXT` (with [`Cluster::control`]) |
//! | `process.on('message')` in a worker | [`Handler::on_message`] |
//!
//! The program runs in the master and in every worker: the code before
//! [`Cluster::serve`] runs in each, and workers share no memory.
//!
//! Its processes go by its own name, the file name it was started as or
//! the one given to [`Cluster::name`]: `myapp: master` and `myapp: worker N`
//! in `ps`, thread names `myapp`, and log lines `myapp[PID]: ...` on stderr
//! (the `ringmaster` binary's are `ringmaster: master`, `rm-worker-N` and
//! `ringmaster[PID]: ...`).
//!
//! [`cli`] is the `ringmaster` command line, for a program that wants the
//! same flags: [`cli::parse_program`] for one with its own handler (its
//! `--help`, errors and `ctl` under its own name, without the binary's
//! `--body`; its `ctl` run by the cluster it gives, under the cluster's
//! [`Cluster::name`]), and [`cli::parse_no_arguments`] for one that takes no
//! arguments (its settings from the environment, say: `--help` says what
//! it is, and any argument is refused rather than ignored).
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

mod address;
mod body_file;
pub mod cli;
mod cluster;
mod ctl;
mod escapes;
#[cfg(test)]
mod readme_example;
mod role;
mod usage_error;
mod worker_serve;

pub use address::ListenAddr;
pub use cluster::{available_cpus, Cluster};
pub use ringmaster_balancer::log::LogFormat;
pub use ringmaster_balancer::Mode;
pub use ringmaster_balancer::SteerChoice as Steer;
pub use ringmaster_engine::handler::{FixedBody, Handler, Header, Request, Response, Version};
pub use ringmaster_engine::{send_to_master, BackendChoice as Backend, EngineConfig};
pub use role::{is_primary, role, worker_id, Role};
