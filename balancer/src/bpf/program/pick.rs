//! A listener chosen: the one a draw found selected and counted sent, and
//! the scan for one whose worker keeps up after the draws found none.

use super::load::{load_of, lookup, Key};
use super::{FLOW, FLOW_KEY_A, KEY, PENDING_A, SCAN, SENT_AT, SOCKS, STALLED, WAITING_SINCE};
use crate::bpf::insn::{Alu, Asm, Cond, Helper, Label, Reg, Size};

/// Selects the listener at index `r8` for the packet (`r6` the context)
/// and counts it sent (its FLOW key at `FLOW_KEY_A`, what waited on it at
/// `PENDING_A`), then goes to `pass`; to `failed` when the kernel refuses
/// the index (its listener gone while the master moves listeners).
pub(super) fn choose(asm: &mut Asm, failed: Label, pass: Label) {
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
pub(super) fn scan(asm: &mut Asm, pass: Label) {
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
