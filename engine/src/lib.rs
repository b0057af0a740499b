//! ringmaster-engine: one ringmaster worker, an HTTP/1.1 responder on
//! io_uring or epoll that allocates nothing on its hot path (accept,
//! receive, parse, send).
//!
//! Layout: `conn` is one connection's HTTP state machine, free of I/O;
//! [`driver`] holds the two event loops around it (`driver/uring/`,
//! `driver/epoll/`) and what they share (`driver/core/`); [`backend`] chooses between them.
//! [`cgroup`] reads the process's cgroup limits (CPU and memory).
//! [`http`] parses requests and [`response`] holds the preformatted replies;
//! `slab` keeps connections in fixed slots, [`panic_guard`] keeps a
//! handler's panic to the one answer, and `fallible` makes what the
//! limits size at start an error rather than an abort when refused; [`stats`] is the shared counters
//! block and [`channel`] the wire format of the master's fd hand-off. The
//! unsafe kernel interfaces sit in [`bufring`], [`channel`], [`stats`],
//! [`uring`] and `sys`.
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

mod answer;
pub mod backend;
pub mod bufring;
pub mod cgroup;
pub mod channel;
pub mod config;
mod conn;
pub mod driver;
mod fallible;
/// A driver with no socket around one connection, for the fuzz targets (`engine/fuzz/`).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod http;
mod lazy_bytes;
pub mod messages;
pub mod panic_guard;
pub mod reach;
mod reason;
mod refused;
pub mod response;
pub mod shared_acks;
pub mod shared_memory;
mod slab;
pub mod stats;
mod sys;
pub mod tally;
#[cfg(test)]
mod test_rng;
pub mod token;
pub mod uring;

pub use backend::{choose_backend, Backend, BackendChoice};
pub use config::{EngineConfig, Faults, StallStart};
pub use driver::{run, Sources};
pub use handler::{FixedBody, Handler, Request, Response};
pub use messages::send_to_master;
pub use refused::is_reservation_refused;
pub use stats::{StatsBlock, WorkerCounters};
pub use sys::socket::{detach_filter, drop_all_but_syns};
pub use sys::{
    exempt_from_locked_memory_limit, fd_limit, ignore_sigpipe, kernel_release, monotonic_ns, out_of_fds,
    out_of_resources, wait_for_packets_in_flight,
};
pub use tally::AcceptTally;
