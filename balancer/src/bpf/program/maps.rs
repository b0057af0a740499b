//! The maps the program reads and what their values mean: indices, keys
//! and offsets the master and the workers write by, and the loads that
//! mark a listener unavailable or stalled.

use crate::bpf::insn::MapRef;

/// The `REUSEPORT_SOCKARRAY` of listeners: the first map fd given to
/// [`Program::resolve`](crate::bpf::insn::Program::resolve).
pub const SOCKS: MapRef = MapRef(0);
/// The `ARRAY` of [`LoadEntry`]: the second map fd.
pub const LOAD: MapRef = MapRef(1);
/// The `ARRAY` of sent and accepted counts by listener key: the third.
pub const FLOW: MapRef = MapRef(2);
/// Most listeners the maps hold: one per worker slot (the master runs at
/// most 512 workers).
pub const CAPACITY: u32 = 512;
/// The `LOAD` index holding how many listener indices are in use: the one
/// after the last listener's.
pub const COUNT_KEY: u32 = CAPACITY;
/// The highest listener key `FLOW` holds (worker ids start at 1).
pub const FLOW_KEY_MAX: u32 = CAPACITY;
/// Bytes of one `FLOW` value: a cache line, so that workers adding to
/// neighbouring keys do not share one.
pub const FLOW_VALUE_SIZE: u32 = 64;
/// Where in a `FLOW` value the program counts connections sent (`u64`).
pub const SENT_AT: usize = 0;
/// Where in a `FLOW` value workers count connections accepted (`u64`): a
/// worker's accept tally ([`ringmaster_engine::AcceptTally`]).
pub const ACCEPTED_AT: usize = 8;
/// Where in a `FLOW` value the worker notes its loop's last turn (`u64`,
/// nanoseconds on `CLOCK_MONOTONIC`, the clock of `bpf_ktime_get_ns`).
pub const TURNED_AT: usize = ACCEPTED_AT + ringmaster_engine::tally::TURNED_AT;
/// Where in a `FLOW` value the program notes when a connection began to
/// wait on an empty queue (`u64`, `CLOCK_MONOTONIC` nanoseconds).
pub const WAITING_SINCE: usize = TURNED_AT + 8;
/// Where in a `FLOW` value the master notes, as it writes the listener's
/// load, the base of the window (`u64`): the count accepted then, or sent
/// if less. What the sent count passes it by weighs on the load.
pub const SENT_BASE_AT: usize = WAITING_SINCE + 8;
/// How long a worker's loop may go without turning while connections wait
/// on its listener before it counts as backed up: a busy worker's loop
/// turns well within it, an idle one wakes within it (on a busy machine,
/// not always: it then loses a few connections to its peer, no more).
pub const TURN_GRACE_NS: u32 = 1_000_000;
/// Connections waiting unaccepted at which a listener counts as backed up.
pub const PENDING_CAP: u32 = 16;
/// A `sent - accepted` above this is a count that ran behind (accepts the
/// program did not send, such as the kernel's hash fallback): read as 0
/// until the master evens the counts out.
pub const PENDING_LIMIT: u32 = 1 << 20;
/// The highest load of a listener that may be chosen.
pub const AVAILABLE_MAX: u32 = i32::MAX as u32;
/// The load that marks a listener not to be chosen.
pub const UNAVAILABLE: u32 = u32::MAX;
/// Added to the load of a listener whose worker seems stalled: it is chosen
/// only over one that seems stalled too and has more, never over one that
/// keeps up (and when every worker seems stalled, by load, not by hash).
pub const STALLED: u32 = 1 << 30;

/// One `LOAD` value, as the program reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadEntry {
    /// The master's load for the listener (at [`COUNT_KEY`]: the count).
    pub load: u32,
    /// The listener's key in `FLOW`.
    pub flow_key: u32,
}
