//! Steering connections by load with eBPF, without a C toolchain: an
//! `SK_REUSEPORT` program assembled here in Rust ([`insn`], [`program`]),
//! loaded with the raw `bpf(2)` syscall ([`sys`], the one file with
//! `unsafe`), and kept in step with a `SO_REUSEPORT` group's listeners and
//! their loads ([`steer`]).

pub mod insn;
pub mod program;
pub mod steer;
pub mod sys;

pub use steer::{Steering, Unavailable};
