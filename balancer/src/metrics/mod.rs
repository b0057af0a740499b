//! `--metrics ADDR`: the master serves Prometheus' text exposition format on
//! a listener of its own, from its event loop, read from the stats block the
//! workers write without being asked (nothing reaches a worker). One file
//! per concern: [`exposition`] (the format), [`page`] (the families),
//! [`procfs`] (CPU and memory from `/proc`), [`request`] (what a client
//! asked for), [`scrapes`] (the endpoint's clients: one small request each,
//! deadlines, a cap; free of I/O).

pub mod exposition;
pub mod page;
pub mod procfs;
pub mod request;
pub mod scrapes;

pub use page::{render, MasterCounts, Snapshot};
pub use scrapes::{Asked, ScrapeId, Scrapes};
