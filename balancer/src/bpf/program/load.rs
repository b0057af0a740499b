//! A listener's load as the program reads it from the maps: the master's,
//! plus what was sent since, and what waits unaccepted, backed up or not.

use super::{
    ACCEPTED_AT, AVAILABLE_MAX, FLOW, KEY, LOAD, MASTER_LOAD, PENDING_CAP, PENDING_LIMIT, SENT_AT, SENT_BASE_AT,
    STALLED, TURNED, TURNED_AT, TURN_GRACE_NS, WAITING_SINCE, WAIT_FROM,
};
use crate::bpf::insn::{Alu, Asm, Cond, Helper, MapRef, Reg, Size};

/// The most milliseconds since a backed-up worker's loop turned that weigh
/// on its load (about 17 minutes).
const AGE_MAX_MS: u32 = 1 << 20;

/// A map key: a register's low 32 bits, a constant, or 4 bytes on the stack.
pub(super) enum Key {
    Reg(Reg),
    Imm(i32),
    Stack(i16),
}

/// `r0 = bpf_map_lookup_elem(map, &key)`.
pub(super) fn lookup(asm: &mut Asm, map: MapRef, key: Key) {
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
pub(super) fn load_of(asm: &mut Asm, index: Reg, flow_key: i16, pending: i16) {
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
