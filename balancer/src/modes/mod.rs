//! Balancing modes: how connections reach workers. [`Balance`] is all the
//! master asks of a mode — who accepts, which listener a worker slot gets,
//! and (when the master accepts) which worker takes the next connection —
//! and each mode is one file: [`rr`] and [`shared`].

pub mod rr;
pub mod shared;

use std::fmt;

use crate::config::Mode;

/// The listener a worker process is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerListener {
    /// None: connections come from the master over the worker's channel.
    None,
    /// The master's own listening socket, shared by every worker.
    Shared,
}

/// What the master knows about one route (a ready worker process that takes
/// connections) when a mode picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteFacts {
    /// It declined connections lately (full, or at its fd limit): skip it for now.
    pub declined: bool,
    /// Its open connections, as its stats slot says.
    pub live: u64,
    /// Connections it may hold (`--max-conns`).
    pub max_conns: u64,
    /// Connections the master holds for it: queued, in flight, not yet acknowledged.
    pub outstanding: usize,
}

impl RouteFacts {
    /// It holds `--max-conns` connections: it takes no more until one closes.
    pub fn full(&self) -> bool {
        self.live >= self.max_conns
    }
}

/// A balancing mode, as the master's dispatch sees it.
///
/// `routes` are the slots of the worker processes that take connections now,
/// in worker order; `facts` tells what is known about each of them.
pub trait Balance: fmt::Debug {
    /// The mode's name, for the log and the stats line.
    fn mode(&self) -> Mode;

    /// The listener the worker process in `slot` is started with.
    fn worker_listener(&self, slot: usize) -> WorkerListener;

    /// True when the master should accept on its listener now.
    fn master_accepts(&self, routes: &[usize], facts: &dyn Fn(usize) -> RouteFacts) -> bool;

    /// The route that takes a connection the master accepted; `None` when no
    /// route takes one now (the master then holds it, or refuses it with `503`).
    fn pick(&mut self, routes: &[usize], facts: &dyn Fn(usize) -> RouteFacts) -> Option<usize>;
}

/// The strategy for `mode`.
pub fn balance_for(mode: Mode) -> Box<dyn Balance> {
    match mode {
        Mode::RoundRobin => Box::new(rr::RoundRobin::default()),
        Mode::Shared => Box::new(shared::Shared),
    }
}
