//! The `rr` hand-off: connections the master accepted, in its custody until
//! a worker acknowledges them. [`lanes`] keeps the books, free of I/O.

pub mod ack_delay;
pub mod lanes;

pub use lanes::{Lane, Sent, SEND_RETRY_PAUSE};
