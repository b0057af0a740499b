//! Shared helpers for the end-to-end benches: start the real `ringmaster`
//! binary and read its stats line ([`server`]), drive it over loopback with a
//! small epoll load client that allocates nothing per request ([`client`]),
//! and turn stats deltas into a per-worker split with Jain's index
//! ([`fairness`]).

pub mod client;
pub mod fairness;
pub mod server;
