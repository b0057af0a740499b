//! The steering program: an `SK_REUSEPORT` program that picks the listener
//! for each new connection (and, loaded for `SELECT_OR_MIGRATE`, for each
//! connection a closing listener leaves behind) by the power of two choices
//! over each listener's load: what the master last wrote, plus what waits
//! unaccepted on it, counted per connection.
//!
//! Its maps ([`SOCKS`], [`LOAD`], [`FLOW`]):
//! - `SOCKS`, a `REUSEPORT_SOCKARRAY`: the listener at each dense index
//!   `0..count`;
//! - `LOAD`, an `ARRAY` of [`LoadEntry`] by the same index: the load the
//!   master writes for that listener (any value above [`AVAILABLE_MAX`],
//!   such as [`UNAVAILABLE`], means "send it nothing"; the master adds
//!   [`STALLED`] for a worker that seems stalled) and the listener's key in
//!   `FLOW`; at [`COUNT_KEY`], the count of indices in use;
//! - `FLOW`, an mmapable `ARRAY` by listener key (the worker slot, stable
//!   while indices move): at [`SENT_AT`] the connections the program sent to
//!   the listener; at [`ACCEPTED_AT`] those its workers accepted, and at
//!   [`TURNED_AT`] when the loop of the worker serving it last woke, both
//!   written by the worker through a mapping of the map; at
//!   [`WAITING_SINCE`] when the program last sent one to an empty queue; at
//!   [`SENT_BASE_AT`] what had been sent when the master last wrote the
//!   load, written by the master through its mapping.
//!
//! To the master's load (live connections as of its last look, a few
//! milliseconds old) it adds the connections sent since (`sent` minus the
//! base): the master's numbers alone would send every connection of a
//! window to the worker that was emptier at its look, in bursts; with what
//! was sent since, connections in a window alternate among equals, as in
//! `least`, where the master counts each one it hands over.
//!
//! The difference, `sent - accepted`, is what waits on the listener right
//! now: the program sees a worker stop the moment it stops accepting, one
//! connection at a time, not at the master's next look. It adds that
//! difference to the master's load. A listener counts as backed up when
//! [`PENDING_CAP`] or more wait, or when any wait and its worker's loop has
//! not turned for [`TURN_GRACE_NS`] since they began to wait; its load is
//! then [`STALLED`] plus what waits plus the milliseconds since its loop
//! last turned, chosen only over one backed up further: of a stopped worker
//! and a busy one, the one that has not turned for longer. A stopped worker
//! gets one connection, or a few while its peer is backed up too.
//!
//! The kernel runs it for every packet that finds no connection and falls
//! to the listeners, not for SYNs alone: a late FIN or ACK of a connection
//! whose server side is gone (closed without `TIME_WAIT` when the kernel has
//! no room for one, or reset) runs it too. Such a packet makes no
//! connection; counted sent, it would weigh on its listener as one waiting
//! until the master's next look evened the counts out. So the program
//! places only a SYN (without ACK, RST or FIN) and, loaded for migration, a
//! connection a closing listener leaves behind; any other packet it leaves
//! to the kernel's hash, and the listener that gets it answers with a
//! reset (or, for a SYN cookie's ACK, takes the connection, uncounted until
//! the master's look).
//!
//! For up to [`ROUNDS`] rounds it draws two distinct indices at random and
//! takes the one with the lower load; if that one is available and its
//! listener is there, it is chosen, and counted as sent. Otherwise (both
//! unavailable, or an index emptied while the master moves listeners) it
//! draws again. After the last round it looks at [`SCAN`] indices in turn
//! from a random one (every index, with that many workers or fewer) and
//! takes the first whose worker keeps up (available, not seen stalled or
//! backed up): most workers are unavailable then (full, draining,
//! starting), and draws alone would leave many SYNs to the kernel's hash,
//! which puts most of them on a listener whose worker cannot take them
//! (with 7 of 8 unavailable, 42 % of SYNs fell to the hash after three
//! draws). Only when the scan finds none either does it return `SK_PASS`
//! having chosen nothing, and the kernel falls back to its hash. Two random
//! choices need no exact or fresh loads: a stale load misleads one draw,
//! not every connection until the next refresh, as "pick the least loaded"
//! would. The scan keeps the verifier's work small (about 38,000
//! instructions processed on Linux 6.18, under the 131,072 of kernels
//! before 5.2), where a least-loaded scan took 295,000.
//!
//! Helpers it calls, all allowed for `BPF_PROG_TYPE_SK_REUSEPORT`
//! (`sk_reuseport_func_proto` in net/core/filter.c, which falls back to
//! `bpf_base_func_proto` for the generic ones): `bpf_map_lookup_elem`,
//! `bpf_get_prandom_u32`, `bpf_ktime_get_ns`, `bpf_sk_select_reuseport`;
//! and an atomic add on a map value. The verifier on the test machines
//! (Linux 6.18) accepts it; the integration test loads it.

use super::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Program, Reg, Size};

/// The `REUSEPORT_SOCKARRAY` of listeners: the first map fd given to
/// [`Program::resolve`].
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
/// The most milliseconds since a backed-up worker's loop turned that weigh
/// on its load (about 17 minutes).
const AGE_MAX_MS: u32 = 1 << 20;
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
/// Draws of two before the program scans for an available listener.
pub const ROUNDS: usize = 3;
/// Indices the scan after the draws looks at: all of them with this many
/// workers or fewer.
pub const SCAN: usize = 16;
/// `SK_PASS`: use the chosen listener, or the hash's when none was chosen.
const SK_PASS: i32 = 1;
/// Offsets in the program's context, `struct sk_reuseport_md`
/// (linux/bpf.h): where the packet's TCP header begins, where the bytes
/// the program may read end, and the connection being migrated (NULL for
/// a packet).
const CTX_DATA: i16 = 0;
const CTX_DATA_END: i16 = 8;
const CTX_MIGRATING_SK: i16 = 48;
/// The byte of a TCP header that holds the flags, and those that tell a
/// SYN, the one packet that asks for a new connection, from the rest.
const TCP_FLAGS_AT: i16 = 13;
const TCP_FIN: i32 = 0x01;
const TCP_SYN: i32 = 0x02;
const TCP_RST: i32 = 0x04;
const TCP_ACK: i32 = 0x10;

/// One `LOAD` value, as the program reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadEntry {
    /// The master's load for the listener (at [`COUNT_KEY`]: the count).
    pub load: u32,
    /// The listener's key in `FLOW`.
    pub flow_key: u32,
}

// The stack: the 4-byte map key at the frame's top; the first candidate's
// load; a load kept across a call; the two candidates' FLOW keys and what
// waits on each; a time kept across a call.
const KEY: i16 = -4;
const SAVED_LOAD: i16 = -16;
const MASTER_LOAD: i16 = -24;
const FLOW_KEY_A: i16 = -28;
const FLOW_KEY_B: i16 = -32;
const PENDING_A: i16 = -40;
const PENDING_B: i16 = -48;
const TURNED: i16 = -56;
const WAIT_FROM: i16 = -64;

/// The program; its maps are [`SOCKS`], [`LOAD`] and [`FLOW`]. `migrates`
/// when it is loaded for `SELECT_OR_MIGRATE` (a kernel before 5.14 has no
/// migrating connection in the context and rejects a program that reads it).
pub fn steering(migrates: bool) -> Program {
    let mut asm = Asm::new();
    let pass = asm.label();
    let place = asm.label();
    // r6: the context, kept for bpf_sk_select_reuseport.
    asm.mov(Reg::R6, Reg::R1);
    // A connection a closing listener leaves behind is placed.
    if migrates {
        asm.load(Size::U64, Reg::R1, Reg::R6, CTX_MIGRATING_SK).jump_if(Cond::Ne, Reg::R1, 0, place);
    }
    // Of packets, only a SYN asks for a connection; the rest go by the hash.
    asm.load(Size::U64, Reg::R2, Reg::R6, CTX_DATA)
        .load(Size::U64, Reg::R3, Reg::R6, CTX_DATA_END)
        .mov(Reg::R1, Reg::R2)
        .alu(Alu::Add, Reg::R1, i32::from(TCP_FLAGS_AT) + 1)
        .jump_if(Cond::Gt, Reg::R1, Reg::R3, pass)
        .load(Size::U8, Reg::R1, Reg::R2, TCP_FLAGS_AT)
        .alu(Alu::And, Reg::R1, TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)
        .jump_if(Cond::Ne, Reg::R1, TCP_SYN, pass);
    asm.bind(place);
    asm.store(Size::U32, Reg::R10, FLOW_KEY_A, 0).store(Size::U32, Reg::R10, FLOW_KEY_B, 0);
    // r7 = LOAD[count]: how many indices are in use; none -> the hash.
    lookup(&mut asm, LOAD, Key::Imm(COUNT_KEY as i32));
    asm.jump_if(Cond::Eq, Reg::R0, 0, pass);
    asm.load(Size::U32, Reg::R7, Reg::R0, 0);
    asm.jump_if(Cond::Eq, Reg::R7, 0, pass);
    for _ in 0..ROUNDS {
        let next = asm.label();
        // r8 = a random index; r9 = another, distinct when there are two or more.
        asm.call(Helper::GetPrandomU32).alu(Alu::Mod, Reg::R0, Reg::R7).mov(Reg::R8, Reg::R0).mov(Reg::R9, Reg::R8);
        let have_b = asm.label();
        asm.jump_if(Cond::Le, Reg::R7, 1, have_b);
        asm.call(Helper::GetPrandomU32)
            .mov(Reg::R1, Reg::R7)
            .alu(Alu::Sub, Reg::R1, 1)
            .alu(Alu::Mod, Reg::R0, Reg::R1)
            .alu(Alu::Add, Reg::R0, 1)
            .alu(Alu::Add, Reg::R0, Reg::R8)
            .alu(Alu::Mod, Reg::R0, Reg::R7)
            .mov(Reg::R9, Reg::R0);
        asm.bind(have_b);
        // Their loads in r1 and r2 (a missing one reads as unavailable).
        load_of(&mut asm, Reg::R8, FLOW_KEY_A, PENDING_A);
        asm.store(Size::U64, Reg::R10, SAVED_LOAD, Reg::R1);
        load_of(&mut asm, Reg::R9, FLOW_KEY_B, PENDING_B);
        asm.mov(Reg::R2, Reg::R1).load(Size::U64, Reg::R1, Reg::R10, SAVED_LOAD);
        // The less loaded of the two (a on a tie): its index in r8, its load
        // in r1, its FLOW key at FLOW_KEY_A, what waits on it at PENDING_A.
        let keep_a = asm.label();
        asm.jump_if(Cond::Le, Reg::R1, Reg::R2, keep_a)
            .mov(Reg::R8, Reg::R9)
            .mov(Reg::R1, Reg::R2)
            .load(Size::U32, Reg::R3, Reg::R10, FLOW_KEY_B)
            .store(Size::U32, Reg::R10, FLOW_KEY_A, Reg::R3)
            .load(Size::U64, Reg::R3, Reg::R10, PENDING_B)
            .store(Size::U64, Reg::R10, PENDING_A, Reg::R3);
        asm.bind(keep_a);
        asm.jump_if(Cond::Gt, Reg::R1, AVAILABLE_MAX as i32, next);
        // Choose it; anything but 0 (its listener gone) draws again.
        choose(&mut asm, next, pass);
        asm.bind(next);
    }
    scan(&mut asm, pass);
    asm.bind(pass);
    asm.mov(Reg::R0, SK_PASS).exit();
    // Every label above is bound and the program is far shorter than a jump's reach.
    asm.finish().expect("the steering program assembles")
}

/// Selects the listener at index `r8` for the packet (`r6` the context)
/// and counts it sent (its FLOW key at `FLOW_KEY_A`, what waited on it at
/// `PENDING_A`), then goes to `pass`; to `failed` when the kernel refuses
/// the index (its listener gone while the master moves listeners).
fn choose(asm: &mut Asm, failed: Label, pass: Label) {
    asm.store(Size::U32, Reg::R10, KEY, Reg::R8)
        .mov(Reg::R1, Reg::R6)
        .load_map(Reg::R2, SOCKS)
        .mov(Reg::R3, Reg::R10)
        .alu(Alu::Add, Reg::R3, KEY as i32)
        .mov(Reg::R4, 0)
        .call(Helper::SkSelectReuseport)
        .jump_if(Cond::Ne, Reg::R0, 0, failed);
    // Chosen: count it sent; if its queue was empty, a wait begins now.
    lookup(asm, FLOW, Key::Stack(FLOW_KEY_A));
    asm.jump_if(Cond::Eq, Reg::R0, 0, pass)
        .mov(Reg::R1, 1)
        .atomic_add(Size::U64, Reg::R0, SENT_AT as i16, Reg::R1)
        .load(Size::U64, Reg::R1, Reg::R10, PENDING_A)
        .jump_if(Cond::Ne, Reg::R1, 0, pass)
        .mov(Reg::R6, Reg::R0)
        .call(Helper::KtimeGetNs)
        .store(Size::U64, Reg::R6, WAITING_SINCE as i16, Reg::R0)
        .jump(pass);
}

/// After the draws found nothing to take: the first of [`SCAN`] indices
/// in turn from a random one (`r7` of them in use) whose worker keeps up
/// (available, and not seen stalled or backed up), chosen as a draw's is;
/// none such, or its listener gone: `pass`, the hash.
fn scan(asm: &mut Asm, pass: Label) {
    asm.call(Helper::GetPrandomU32).alu(Alu::Mod, Reg::R0, Reg::R7).mov(Reg::R9, Reg::R0);
    for step in 0..SCAN {
        let skip = asm.label();
        // Fewer indices in use than steps: each has been looked at.
        asm.jump_if(Cond::Le, Reg::R7, step as i32, pass);
        asm.mov(Reg::R8, Reg::R9).alu(Alu::Add, Reg::R8, step as i32).alu(Alu::Mod, Reg::R8, Reg::R7);
        load_of(asm, Reg::R8, FLOW_KEY_A, PENDING_A);
        asm.jump_if(Cond::Ge, Reg::R1, STALLED as i32, skip);
        choose(asm, pass, pass);
        asm.bind(skip);
    }
}

/// A map key: a register's low 32 bits, a constant, or 4 bytes on the stack.
enum Key {
    Reg(Reg),
    Imm(i32),
    Stack(i16),
}

/// `r0 = bpf_map_lookup_elem(map, &key)`.
fn lookup(asm: &mut Asm, map: MapRef, key: Key) {
    let at = match key {
        Key::Reg(reg) => {
            asm.store(Size::U32, Reg::R10, KEY, reg);
            KEY
        }
        Key::Imm(imm) => {
            asm.store(Size::U32, Reg::R10, KEY, imm);
            KEY
        }
        Key::Stack(at) => at,
    };
    asm.load_map(Reg::R1, map).mov(Reg::R2, Reg::R10).alu(Alu::Add, Reg::R2, at as i32).call(Helper::MapLookupElem);
}

/// `r1` = the load of the listener at `index`: [`UNAVAILABLE`] (as all
/// ones) when there is none; the master's when it is unavailable;
/// otherwise the master's plus what was sent since the window's base
/// (which holds what waits unaccepted), backed up at
/// [`PENDING_CAP`] or when its worker has not turned for
/// [`TURN_GRACE_NS`]. Its FLOW key goes to the stack at `flow_key`, what
/// waits on it at `pending`.
fn load_of(asm: &mut Asm, index: Reg, flow_key: i16, pending: i16) {
    let done = asm.label();
    let marked = asm.label();
    let sane = asm.label();
    asm.store(Size::U64, Reg::R10, pending, 0);
    lookup(asm, LOAD, Key::Reg(index));
    asm.mov(Reg::R1, -1).jump_if(Cond::Eq, Reg::R0, 0, done);
    asm.load(Size::U32, Reg::R1, Reg::R0, 0)
        .load(Size::U32, Reg::R2, Reg::R0, 4)
        .store(Size::U32, Reg::R10, flow_key, Reg::R2)
        .jump_if(Cond::Gt, Reg::R1, AVAILABLE_MAX as i32, done)
        .store(Size::U64, Reg::R10, MASTER_LOAD, Reg::R1);
    lookup(asm, FLOW, Key::Stack(flow_key));
    asm.load(Size::U64, Reg::R1, Reg::R10, MASTER_LOAD).jump_if(Cond::Eq, Reg::R0, 0, done);
    // r1 += sent since the window's base, which the master set as it wrote
    // the load: what was accepted then, or sent if less (0 when the counts
    // ran behind). So what was in flight then weighs until the next load
    // counts it live, and what was sent since and still waits weighs once.
    let counted = asm.label();
    asm.load(Size::U64, Reg::R2, Reg::R0, SENT_AT as i16)
        .load(Size::U64, Reg::R3, Reg::R0, SENT_BASE_AT as i16)
        .alu(Alu::Sub, Reg::R2, Reg::R3)
        .jump_if(Cond::Gt, Reg::R2, PENDING_LIMIT as i32, counted)
        .alu(Alu::Add, Reg::R1, Reg::R2)
        .store(Size::U64, Reg::R10, MASTER_LOAD, Reg::R1);
    asm.bind(counted);
    // r2 = sent - accepted, or 0 when the counts ran behind.
    asm.load(Size::U64, Reg::R2, Reg::R0, SENT_AT as i16)
        .load(Size::U64, Reg::R3, Reg::R0, ACCEPTED_AT as i16)
        .alu(Alu::Sub, Reg::R2, Reg::R3)
        .jump_if(Cond::Le, Reg::R2, PENDING_LIMIT as i32, sane)
        .mov(Reg::R2, 0);
    asm.bind(sane);
    asm.store(Size::U64, Reg::R10, pending, Reg::R2).jump_if(Cond::Eq, Reg::R2, 0, done);
    // Some wait. Backed up when the worker's loop has not turned for the
    // grace since they began to wait (the later of its last turn and the
    // wait's start), or when too many wait.
    let later = asm.label();
    let rank = asm.label();
    asm.load(Size::U64, Reg::R3, Reg::R0, TURNED_AT as i16)
        .load(Size::U64, Reg::R5, Reg::R0, WAITING_SINCE as i16)
        .store(Size::U64, Reg::R10, TURNED, Reg::R3)
        .jump_if(Cond::Ge, Reg::R3, Reg::R5, later)
        .mov(Reg::R3, Reg::R5);
    asm.bind(later);
    asm.store(Size::U64, Reg::R10, WAIT_FROM, Reg::R3)
        .call(Helper::KtimeGetNs)
        .load(Size::U64, Reg::R1, Reg::R10, MASTER_LOAD)
        .load(Size::U64, Reg::R2, Reg::R10, pending)
        .load(Size::U64, Reg::R3, Reg::R10, WAIT_FROM);
    elapsed(asm, Reg::R3);
    // Not backed up: what waits is in the window's count already.
    asm.jump_if(Cond::Gt, Reg::R4, TURN_GRACE_NS as i32, rank)
        .jump_if(Cond::Ge, Reg::R2, PENDING_CAP as i32, rank)
        .jump(done);
    // Ranked among the backed up by how long since the loop last turned: a
    // stopped worker's time grows, a busy one's starts over each turn.
    asm.bind(rank);
    asm.load(Size::U64, Reg::R3, Reg::R10, TURNED);
    elapsed(asm, Reg::R3);
    // Backed up: STALLED (unless the master marked it already) plus what
    // waits plus the milliseconds (2^20 ns) since the loop turned, so that
    // of two backed up the one stopped longer is avoided.
    asm.jump_if(Cond::Ge, Reg::R1, STALLED as i32, marked).mov(Reg::R1, STALLED as i32);
    asm.bind(marked);
    let capped = asm.label();
    asm.alu(Alu::Rsh, Reg::R4, 20)
        .jump_if(Cond::Le, Reg::R4, AGE_MAX_MS as i32, capped)
        .mov(Reg::R4, AGE_MAX_MS as i32);
    asm.bind(capped);
    asm.alu(Alu::Add, Reg::R1, Reg::R2)
        .alu(Alu::Add, Reg::R1, Reg::R4)
        .jump_if(Cond::Le, Reg::R1, AVAILABLE_MAX as i32, done)
        .mov(Reg::R1, AVAILABLE_MAX as i32);
    asm.bind(done);
}

/// `r4 = r0 - since` (`r0` the time now), or 0 when `since` is later.
fn elapsed(asm: &mut Asm, since: Reg) {
    let later = asm.label();
    asm.mov(Reg::R4, 0).jump_if(Cond::Gt, since, Reg::R0, later).mov(Reg::R4, Reg::R0).alu(Alu::Sub, Reg::R4, since);
    asm.bind(later);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_assembles_with_every_map_relocated() {
        for migrates in [true, false] {
            let program = steering(migrates);
            // BPF_MAXINSNS: the most an unprivileged load may have (root may load more).
            assert!(program.len() <= 4096, "{} slots", program.len());
            let insns = program.resolve(&[11, 12, 13]).expect("every map");
            let fds: Vec<i32> = insns
                .iter()
                .map(|i| i.to_bytes())
                .filter(|b| b[0] == 0x18)
                .map(|b| i32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
                .collect();
            assert!([11, 12, 13].iter().all(|fd| fds.contains(fd)), "{fds:?}");
            assert_eq!(insns.last().map(|i| i.to_bytes()[0]), Some(0x95), "it ends in exit");
        }
    }

    #[test]
    fn only_a_program_loaded_for_migration_reads_the_migrating_connection() {
        // `ldxdw rX, [r6 + 48]`: a read of `migrating_sk`.
        let reads_it = |migrates: bool| {
            let insns = steering(migrates).resolve(&[11, 12, 13]).expect("every map");
            insns.iter().map(|i| i.to_bytes()).any(|b| b[0] == 0x79 && b[1] >> 4 == 6 && b[2] == 48)
        };
        assert!(reads_it(true));
        assert!(!reads_it(false), "a kernel before 5.14 would reject it");
    }
}
