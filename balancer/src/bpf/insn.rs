//! eBPF instructions and a small typed assembler: registers, operands and
//! conditions are types, jumps go to labels resolved when the program is
//! finished, and a map is named by a [`MapRef`] whose fd is patched in at
//! load time (a relocation, as nginx's `ngx_bpf.c` patches map fds into its
//! pre-assembled bytecode). The encoding is the kernel's `struct bpf_insn`
//! (include/uapi/linux/bpf.h); nothing here touches the kernel.

use std::fmt;
use std::os::fd::RawFd;

// Instruction classes and fields from linux/bpf_common.h: libc has them.
const LDX: u8 = libc::BPF_LDX as u8;
const ST: u8 = libc::BPF_ST as u8;
const STX: u8 = libc::BPF_STX as u8;
const JMP: u8 = libc::BPF_JMP as u8;
const MEM: u8 = libc::BPF_MEM as u8;
const IMM: u8 = libc::BPF_IMM as u8;
const LD: u8 = libc::BPF_LD as u8;
const K: u8 = libc::BPF_K as u8;
const X: u8 = libc::BPF_X as u8;
// eBPF's own, from linux/bpf.h (libc has only classic BPF's).
/// `BPF_ALU64`: 64-bit arithmetic.
const ALU64: u8 = 0x07;
/// `BPF_DW`: a double word (the size of `ld_imm64`).
const DW: u8 = 0x18;
/// `BPF_CALL`: call a helper.
const CALL: u8 = 0x80;
/// `BPF_EXIT`: return `r0`.
const EXIT: u8 = 0x90;
/// `BPF_ATOMIC`: a read-modify-write of memory, the operation in `imm`.
const ATOMIC: u8 = 0xc0;
/// `BPF_ADD` as an atomic operation: add, fetching nothing.
const ATOMIC_ADD: i32 = 0x00;
/// `BPF_PSEUDO_MAP_FD`: in `ld_imm64`'s source register, "imm is a map fd".
const PSEUDO_MAP_FD: u8 = 1;

/// A register: `R0` holds results, `R1`..`R5` arguments (clobbered by a
/// call), `R6`..`R9` survive calls, `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// The second operand of an arithmetic op or a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A register.
    Reg(Reg),
    /// A 32-bit immediate, sign-extended to 64 bits.
    Imm(i32),
}

impl From<Reg> for Src {
    fn from(reg: Reg) -> Src {
        Src::Reg(reg)
    }
}

impl From<i32> for Src {
    fn from(imm: i32) -> Src {
        Src::Imm(imm)
    }
}

/// 64-bit arithmetic operations (`BPF_ALU64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Alu {
    Add = libc::BPF_ADD as u8,
    Sub = libc::BPF_SUB as u8,
    Mul = libc::BPF_MUL as u8,
    Div = libc::BPF_DIV as u8,
    /// Unsigned remainder; by zero it leaves the destination as it was.
    Mod = libc::BPF_MOD as u8,
    And = libc::BPF_AND as u8,
    Or = libc::BPF_OR as u8,
    Xor = libc::BPF_XOR as u8,
    Lsh = libc::BPF_LSH as u8,
    Rsh = libc::BPF_RSH as u8,
    /// `BPF_MOV`.
    Mov = 0xb0,
}

/// Unsigned 64-bit comparisons for conditional jumps (`BPF_JMP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Cond {
    Eq = libc::BPF_JEQ as u8,
    Gt = libc::BPF_JGT as u8,
    Ge = libc::BPF_JGE as u8,
    /// `BPF_JNE`.
    Ne = 0x50,
    /// `BPF_JLT`.
    Lt = 0xa0,
    /// `BPF_JLE`.
    Le = 0xb0,
}

/// The width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Size {
    U8 = libc::BPF_B as u8,
    U16 = libc::BPF_H as u8,
    U32 = libc::BPF_W as u8,
    U64 = DW,
}

/// Kernel helpers, by their number in `enum bpf_func_id` (linux/bpf.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Helper {
    /// `void *bpf_map_lookup_elem(map, key)`: the value, or NULL.
    MapLookupElem = 1,
    /// `u64 bpf_ktime_get_ns(void)`: `CLOCK_MONOTONIC`.
    KtimeGetNs = 5,
    /// `u32 bpf_get_prandom_u32(void)`.
    GetPrandomU32 = 7,
    /// `long bpf_sk_select_reuseport(ctx, map, key, flags)`: 0 when the
    /// socket at `key` in a `REUSEPORT_SOCKARRAY` is chosen.
    SkSelectReuseport = 82,
}

/// One instruction, laid out as the kernel's `struct bpf_insn`: opcode,
/// destination register in the low nibble and source in the high one,
/// a signed 16-bit offset and a signed 32-bit immediate (little-endian, as
/// the host: the kernel reads it in host order).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// `src` is a register number, or a pseudo source (`PSEUDO_MAP_FD`).
    fn new(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (dst as u8) | (src << 4), off, imm }
    }

    /// The eight bytes the kernel reads.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0; 8];
        out[0] = self.code;
        out[1] = self.regs;
        out[2..4].copy_from_slice(&self.off.to_ne_bytes());
        out[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        out
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x} dst=r{} src=r{} off={} imm={}",
            self.code,
            self.regs & 0xf,
            self.regs >> 4,
            self.off,
            self.imm
        )
    }
}

/// A map the program uses, by its position in the list of fds given when
/// the program is [resolved](Program::resolve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRef(pub usize);

/// A place in the program a jump goes to, made by [`Asm::label`] and placed
/// by [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Why a program could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsmError {
    /// A jump goes to a label that was never bound.
    Unbound(Label),
    /// A jump is farther than a 16-bit offset reaches.
    TooFar(Label),
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsmError::Unbound(label) => write!(f, "label {} is never bound", label.0),
            AsmError::TooFar(label) => write!(f, "label {} is out of a jump's reach", label.0),
        }
    }
}

impl std::error::Error for AsmError {}

/// An assembler: append instructions, then [`finish`](Asm::finish).
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Where each label is bound, by label number.
    labels: Vec<Option<usize>>,
    /// Jumps to patch: instruction index and target label.
    fixups: Vec<(usize, Label)>,
    /// `ld_imm64` of a map fd: instruction index and the map.
    relocs: Vec<(usize, MapRef)>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A new label, to be bound later.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn push(&mut self, insn: Insn) -> &mut Asm {
        self.insns.push(insn);
        self
    }

    /// `dst = dst <op> src`, on 64 bits.
    pub fn alu(&mut self, op: Alu, dst: Reg, src: impl Into<Src>) -> &mut Asm {
        match src.into() {
            Src::Reg(src) => self.push(Insn::new(ALU64 | op as u8 | X, dst, src as u8, 0, 0)),
            Src::Imm(imm) => self.push(Insn::new(ALU64 | op as u8 | K, dst, 0, 0, imm)),
        }
    }

    /// `dst = src`.
    pub fn mov(&mut self, dst: Reg, src: impl Into<Src>) -> &mut Asm {
        self.alu(Alu::Mov, dst, src)
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Asm {
        self.push(Insn::new(LDX | MEM | size as u8, dst, src as u8, off, 0))
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: impl Into<Src>) -> &mut Asm {
        match src.into() {
            Src::Reg(src) => self.push(Insn::new(STX | MEM | size as u8, dst, src as u8, off, 0)),
            Src::Imm(imm) => self.push(Insn::new(ST | MEM | size as u8, dst, 0, off, imm)),
        }
    }

    /// `*(size *)(dst + off) += src`, atomically (`BPF_ATOMIC` with
    /// `BPF_ADD`, once called `BPF_XADD`); 32 or 64 bits only.
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Asm {
        self.push(Insn::new(STX | ATOMIC | size as u8, dst, src as u8, off, ATOMIC_ADD))
    }

    /// `dst = <fd of map>` as the kernel wants it for a map argument: a
    /// two-slot `ld_imm64` whose immediate is patched with the fd on load.
    pub fn load_map(&mut self, dst: Reg, map: MapRef) -> &mut Asm {
        self.relocs.push((self.insns.len(), map));
        self.push(Insn::new(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, 0));
        self.push(Insn::new(0, Reg::R0, 0, 0, 0))
    }

    /// `if dst <cond> src goto target` (unsigned, 64-bit).
    pub fn jump_if(&mut self, cond: Cond, dst: Reg, src: impl Into<Src>, target: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), target));
        match src.into() {
            Src::Reg(src) => self.push(Insn::new(JMP | cond as u8 | X, dst, src as u8, 0, 0)),
            Src::Imm(imm) => self.push(Insn::new(JMP | cond as u8 | K, dst, 0, 0, imm)),
        }
    }

    /// `goto target`.
    pub fn jump(&mut self, target: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), target));
        self.push(Insn::new(JMP | libc::BPF_JA as u8, Reg::R0, 0, 0, 0))
    }

    /// `r0 = helper(r1, ..., r5)`; `r1`..`r5` are clobbered.
    pub fn call(&mut self, helper: Helper) -> &mut Asm {
        self.push(Insn::new(JMP | CALL, Reg::R0, 0, 0, helper as i32))
    }

    /// `return r0`.
    pub fn exit(&mut self) -> &mut Asm {
        self.push(Insn::new(JMP | EXIT, Reg::R0, 0, 0, 0))
    }

    /// The program, its jumps resolved.
    pub fn finish(mut self) -> Result<Program, AsmError> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(AsmError::Unbound(label))?;
            // A jump's offset counts from the instruction after it.
            let off = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(off).map_err(|_| AsmError::TooFar(label))?;
        }
        Ok(Program { insns: self.insns, relocs: self.relocs })
    }
}

/// An assembled program whose map fds are still to be filled in.
#[derive(Clone, Debug)]
pub struct Program {
    insns: Vec<Insn>,
    relocs: Vec<(usize, MapRef)>,
}

impl Program {
    /// How many instruction slots it has (an `ld_imm64` takes two).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// True when it has no instructions.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The instructions with each map's fd patched in: `maps[i]` is the fd of
    /// `MapRef(i)`. `None` when a map the program names is not given.
    pub fn resolve(&self, maps: &[RawFd]) -> Option<Vec<Insn>> {
        let mut insns = self.insns.clone();
        for &(at, MapRef(map)) in &self.relocs {
            insns[at].imm = *maps.get(map)?;
        }
        Some(insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(asm: Asm) -> Vec<[u8; 8]> {
        asm.finish().expect("assembles").resolve(&[5]).expect("maps").into_iter().map(Insn::to_bytes).collect()
    }

    // The expected bytes are what clang -target bpf emits for the same
    // instructions (llvm-objdump -d shows them in this order).
    #[test]
    fn encodings_match_the_kernel_layout() {
        let mut asm = Asm::new();
        asm.mov(Reg::R0, 1)
            .mov(Reg::R6, Reg::R1)
            .alu(Alu::Add, Reg::R2, -4)
            .alu(Alu::Mod, Reg::R0, Reg::R7)
            .load(Size::U32, Reg::R2, Reg::R1, 32)
            .store(Size::U32, Reg::R10, -4, Reg::R8)
            .store(Size::U32, Reg::R10, -8, 7)
            .call(Helper::GetPrandomU32)
            .call(Helper::SkSelectReuseport)
            .exit();
        assert_eq!(
            bytes(asm),
            [
                [0xb7, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
                [0xbf, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
                [0x07, 0x02, 0x00, 0x00, 0xfc, 0xff, 0xff, 0xff],
                [0x9f, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
                [0x61, 0x12, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00],
                [0x63, 0x8a, 0xfc, 0xff, 0x00, 0x00, 0x00, 0x00],
                [0x62, 0x0a, 0xf8, 0xff, 0x07, 0x00, 0x00, 0x00],
                [0x85, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00],
                [0x85, 0x00, 0x00, 0x00, 0x52, 0x00, 0x00, 0x00],
                [0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            ]
        );
    }

    #[test]
    fn an_atomic_add_is_a_store_of_class_atomic() {
        // clang: `lock *(u64 *)(r0 + 8) += r1` and `lock *(u32 *)(r2 - 4) += r3`.
        let mut asm = Asm::new();
        asm.atomic_add(Size::U64, Reg::R0, 8, Reg::R1).atomic_add(Size::U32, Reg::R2, -4, Reg::R3);
        assert_eq!(
            bytes(asm),
            [[0xdb, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00], [0xc3, 0x32, 0xfc, 0xff, 0x00, 0x00, 0x00, 0x00]]
        );
    }

    #[test]
    fn a_map_load_is_two_slots_with_the_fd_patched_in() {
        let mut asm = Asm::new();
        asm.load_map(Reg::R1, MapRef(0));
        assert_eq!(
            bytes(asm),
            [[0x18, 0x11, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]]
        );
        let mut asm = Asm::new();
        asm.load_map(Reg::R1, MapRef(1));
        assert!(asm.finish().expect("assembles").resolve(&[5]).is_none(), "map 1 is not given");
    }

    #[test]
    fn jumps_count_from_the_next_instruction_forward_and_back() {
        let mut asm = Asm::new();
        let (top, out) = (asm.label(), asm.label());
        asm.bind(top);
        asm.jump_if(Cond::Ne, Reg::R0, 0, out) // +2
            .jump_if(Cond::Gt, Reg::R1, Reg::R2, out) // +1
            .jump(top); // -3
        asm.bind(out);
        asm.exit();
        assert_eq!(
            bytes(asm)[..3],
            [
                [0x55, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00],
                [0x2d, 0x21, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
                [0x05, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00, 0x00],
            ]
        );
    }

    #[test]
    fn an_unbound_label_is_an_error() {
        let mut asm = Asm::new();
        let nowhere = asm.label();
        asm.jump(nowhere);
        assert_eq!(asm.finish().unwrap_err(), AsmError::Unbound(nowhere));
    }

    #[test]
    fn an_instruction_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}
