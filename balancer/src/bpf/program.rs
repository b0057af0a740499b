//! The steering program: an `SK_REUSEPORT` program that picks the listener
//! for each new connection (and, loaded for `SELECT_OR_MIGRATE`, for each
//! connection a closing listener leaves behind) by the power of two choices
//! over the live load the master writes.
//!
//! Its maps ([`SOCKS`], [`LOAD`]) index the group's listeners densely,
//! `0..count`:
//! - `SOCKS`, a `REUSEPORT_SOCKARRAY`: the listener at each index;
//! - `LOAD`, an `ARRAY` of `u32`: the load of the listener at each index
//!   (any value above [`AVAILABLE_MAX`], such as [`UNAVAILABLE`], means
//!   "send it nothing"; the master adds [`STALLED`] for a worker that seems
//!   stalled), and at [`COUNT_KEY`] the count of indices in use.
//!
//! For up to [`ROUNDS`] rounds it draws two distinct indices at random and
//! takes the one with the lower load; if that one is available and its
//! listener is there, it is chosen. Otherwise (both unavailable, or an
//! index emptied while the master moves listeners) it draws again; after
//! the last round it returns `SK_PASS` having chosen nothing, and the kernel
//! falls back to its hash. Two random choices need no exact or fresh loads:
//! a stale load misleads one draw, not every connection until the next
//! refresh, as "pick the least loaded" would.
//!
//! Helpers it calls, all allowed for `BPF_PROG_TYPE_SK_REUSEPORT`
//! (`sk_reuseport_func_proto` in net/core/filter.c, which falls back to
//! `bpf_base_func_proto` for the generic ones): `bpf_map_lookup_elem`,
//! `bpf_get_prandom_u32`, `bpf_sk_select_reuseport`. The verifier on the
//! test machines (Linux 6.18) accepts it; the integration test loads it.

use super::insn::{Alu, Asm, Cond, Helper, MapRef, Program, Reg, Size};

/// The `REUSEPORT_SOCKARRAY` of listeners: the first map fd given to
/// [`Program::resolve`].
pub const SOCKS: MapRef = MapRef(0);
/// The `ARRAY` of loads: the second map fd.
pub const LOAD: MapRef = MapRef(1);
/// Most listeners the maps hold: one per worker slot (the master runs at
/// most 512 workers).
pub const CAPACITY: u32 = 512;
/// The `LOAD` index holding how many listener indices are in use: the one
/// after the last listener's.
pub const COUNT_KEY: u32 = CAPACITY;
/// The highest load of a listener that may be chosen.
pub const AVAILABLE_MAX: u32 = i32::MAX as u32;
/// The load that marks a listener not to be chosen.
pub const UNAVAILABLE: u32 = u32::MAX;
/// Added to the load of a listener whose worker seems stalled: it is chosen
/// only over one that seems stalled too and has more, never over one that
/// keeps up (and when every worker seems stalled, by load, not by hash).
pub const STALLED: u32 = 1 << 30;
/// Draws of two before the program leaves the choice to the kernel's hash.
pub const ROUNDS: usize = 3;
/// `SK_PASS`: use the chosen listener, or the hash's when none was chosen.
const SK_PASS: i32 = 1;

// The stack: the 4-byte map key at the frame's top, a saved load below it.
const KEY: i16 = -4;
const SAVED_LOAD: i16 = -16;

/// The program; its maps are [`SOCKS`] and [`LOAD`].
pub fn steering() -> Program {
    let mut asm = Asm::new();
    let pass = asm.label();
    // r6: the context, kept for bpf_sk_select_reuseport.
    asm.mov(Reg::R6, Reg::R1);
    // r7 = LOAD[count]: how many indices are in use; none -> the hash.
    lookup_load(&mut asm, Src32::Imm(COUNT_KEY as i32));
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
        // Their loads (a missing one reads as unavailable): a's saved on the stack.
        load_of(&mut asm, Reg::R8, Reg::R1);
        asm.store(Size::U64, Reg::R10, SAVED_LOAD, Reg::R1);
        load_of(&mut asm, Reg::R9, Reg::R2);
        asm.load(Size::U64, Reg::R1, Reg::R10, SAVED_LOAD);
        // The less loaded of the two (a on a tie) in r8, its load in r1.
        let keep_a = asm.label();
        asm.jump_if(Cond::Le, Reg::R1, Reg::R2, keep_a).mov(Reg::R8, Reg::R9).mov(Reg::R1, Reg::R2);
        asm.bind(keep_a);
        asm.jump_if(Cond::Gt, Reg::R1, AVAILABLE_MAX as i32, next);
        // Choose it; 0 means chosen, anything else (its listener gone) draws again.
        asm.store(Size::U32, Reg::R10, KEY, Reg::R8)
            .mov(Reg::R1, Reg::R6)
            .load_map(Reg::R2, SOCKS)
            .mov(Reg::R3, Reg::R10)
            .alu(Alu::Add, Reg::R3, KEY as i32)
            .mov(Reg::R4, 0)
            .call(Helper::SkSelectReuseport)
            .jump_if(Cond::Eq, Reg::R0, 0, pass);
        asm.bind(next);
    }
    asm.bind(pass);
    asm.mov(Reg::R0, SK_PASS).exit();
    // Every label above is bound and the program is far shorter than a jump's reach.
    asm.finish().expect("the steering program assembles")
}

/// A map key: a register's low 32 bits, or a constant.
enum Src32 {
    Reg(Reg),
    Imm(i32),
}

/// `r0 = bpf_map_lookup_elem(LOAD, &key)`.
fn lookup_load(asm: &mut Asm, key: Src32) {
    match key {
        Src32::Reg(reg) => asm.store(Size::U32, Reg::R10, KEY, reg),
        Src32::Imm(imm) => asm.store(Size::U32, Reg::R10, KEY, imm),
    };
    asm.load_map(Reg::R1, LOAD).mov(Reg::R2, Reg::R10).alu(Alu::Add, Reg::R2, KEY as i32).call(Helper::MapLookupElem);
}

/// `out = LOAD[index]`, or [`UNAVAILABLE`] (as all ones) when there is none.
fn load_of(asm: &mut Asm, index: Reg, out: Reg) {
    let done = asm.label();
    lookup_load(asm, Src32::Reg(index));
    asm.mov(out, -1).jump_if(Cond::Eq, Reg::R0, 0, done).load(Size::U32, out, Reg::R0, 0);
    asm.bind(done);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_assembles_with_both_maps_relocated() {
        let program = steering();
        assert!(program.len() < 200, "{} slots", program.len());
        let insns = program.resolve(&[11, 12]).expect("both maps");
        let fds: Vec<i32> = insns
            .iter()
            .map(|i| i.to_bytes())
            .filter(|b| b[0] == 0x18)
            .map(|b| i32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
            .collect();
        assert!(fds.contains(&11) && fds.contains(&12), "{fds:?}");
        assert_eq!(insns.last().map(|i| i.to_bytes()[0]), Some(0x95), "it ends in exit");
    }
}
