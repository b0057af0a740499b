//! ringmaster-engine: one ringmaster worker, an io_uring HTTP/1.1 responder
//! that allocates nothing on its hot path (accept, receive, parse, send).
//!
//! Layout: [`worker`] is the loop; `conn` and `slab` hold connections;
//! [`http`] parses requests and [`response`] holds the preformatted replies;
//! [`stats`] is the shared counters block and [`channel`] the wire format of
//! the master's fd hand-off. The unsafe kernel interfaces sit in `bufring`,
//! [`channel`], [`stats`], [`uring`] and `sys`.
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod backend;
mod bufring;
pub mod channel;
pub mod config;
mod conn;
pub mod errno;
pub mod http;
pub mod response;
mod slab;
pub mod stats;
mod sys;
pub mod token;
pub mod uring;
pub mod worker;

pub use backend::{choose_backend, Backend, BackendChoice};
pub use config::EngineConfig;
pub use stats::{StatsBlock, WorkerCounters};
pub use sys::ignore_sigpipe;
pub use worker::{run, Sources};
