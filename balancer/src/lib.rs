//! ringmaster-balancer: the master process. It owns the listening socket,
//! starts the workers (re-executing its own binary), hands connections to
//! them (`rr`) or lets them accept (`shared`), and supervises them.
//!
//! One file per concern: [`config`], [`control`] (the control socket), [`cpus`], [`listener`], [`spawn`] and
//! [`worker_role`] (both ends of starting a worker), [`lanes`] (fd hand-off),
//! [`rr`] (the round-robin choice), [`refuse`] (`503` for connections no worker can take), [`rlimit`], [`signals`],
//! [`log`] (whole-line stderr writes), [`stats_line`], [`title`] (what `ps` shows), [`privileges`] (`--user`,
//! `--group`), and [`master`] (the loop that ties them together).
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod cpus;
pub mod faults;
pub mod lanes;
pub mod listener;
pub mod log;
pub mod master;
pub mod privileges;
pub mod refuse;
pub mod rlimit;
pub mod rr;
pub mod signals;
pub mod spawn;
pub mod stats_line;
pub mod title;
pub mod worker_role;

pub use config::{MasterConfig, Mode, WorkerExec};
pub use master::run_master;
pub use worker_role::{identity_from_env, run_worker};
