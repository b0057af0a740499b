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

mod load;
mod maps;
mod pick;

use super::insn::{Alu, Asm, Cond, Helper, Program, Reg, Size};
use load::{load_of, lookup, Key};
use pick::{choose, scan};

pub use maps::{
    LoadEntry, ACCEPTED_AT, AVAILABLE_MAX, CAPACITY, COUNT_KEY, FLOW, FLOW_KEY_MAX, FLOW_VALUE_SIZE, LOAD, PENDING_CAP,
    PENDING_LIMIT, SENT_AT, SENT_BASE_AT, SOCKS, STALLED, TURNED_AT, TURN_GRACE_NS, UNAVAILABLE, WAITING_SINCE,
};

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
