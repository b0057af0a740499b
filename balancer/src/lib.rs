//! ringmaster-balancer: the master process. It owns the listening socket,
//! starts the workers (re-executing its own binary), hands connections to
//! them (`rr`) or lets them accept (`shared`), and supervises them.
//!
//! One concern per module: [`master`] (the loop, and beside it supervision,
//! reload and scale, dispatch, commands, stats), [`modes`] (how connections
//! reach workers: one file per mode), [`handoff`] (fd custody until a worker
//! acknowledges), [`reactor`] (the master's I/O on io_uring or epoll),
//! [`control`] (the control socket and `ringmaster ctl`), [`spawn`] and
//! [`worker_role`] (both ends of starting a worker), [`backoff`] (a crashed
//! worker's restart delays), [`config`], [`cpus`], [`listener`], [`locked_memory`] (room
//! under `RLIMIT_MEMLOCK` for the workers' rings), [`refuse`]
//! (`503` for connections no worker can take), [`panic_hook`] (a handler's
//! panic costs one request, any other ends the process), [`rlimit`], [`signals`],
//! [`mod@log`] (whole-line stderr writes), [`stats_line`], [`metrics`] (the
//! Prometheus endpoint), [`systemd`] (readiness and socket activation),
//! [`title`] (what `ps` shows), [`privileges`] (`--user`, `--group`; [`capabilities`], the one it keeps),
//! [`upgrade`] (handing the sockets to a new master started from a new
//! binary), [`faults`] (fault injection for tests), [`bpf`] (steering `reuseport`
//! connections by load with an eBPF program assembled here) and [`error`]
//! (the crate's one error type).
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod backoff;
pub mod bpf;
pub mod capabilities;
pub mod config;
pub mod control;
pub mod cpus;
pub mod epoch_slots;
pub mod error;
pub mod exit_codes;
pub mod faults;
pub mod fd_reserve;
pub mod handoff;
pub mod handshakes;
pub mod in_flight;
pub mod listener;
pub mod locked_memory;
pub mod log;
pub mod master;
pub mod metrics;
pub mod modes;
pub mod panic_hook;
pub mod privileges;
pub mod reactor;
pub mod refuse;
pub mod rlimit;
pub mod signals;
pub mod spawn;
pub mod stats_line;
pub mod systemd;
pub mod title;
pub mod upgrade;
pub mod worker_role;

pub use config::{MasterConfig, Mode, SteerChoice, WorkerExec, WorkerMessageHook};
pub use error::{Error, Result};
pub use master::{run_master, MAX_WORKERS};
pub use worker_role::{identity_from_env, run_worker};
