//! Shared helpers for the end-to-end benches: start the real `ringmaster`
//! binary and read its stats line ([`server`]), drive it over loopback with a
//! small epoll load client that allocates nothing per request ([`client`]),
//! turn stats deltas into a per-worker split with Jain's index
//! ([`fairness`]), and run timed mixed loads with latencies and timeouts
//! ([`timed`]) for the balancing scenarios ([`scenarios`]).

pub mod client;
pub mod fairness;
pub mod scenarios;
pub mod server;
pub mod timed;
