//! A minimal eBPF assembler: the instructions the kernel responder uses and forward jumps to
//! labels. Kept to what the responder's program needs, so every opcode here is exercised by it.

use super::bpf_sys::Insn;
use std::collections::BTreeMap;

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const FP: u8 = 10;

// Opcodes (class | op | source or size), from <linux/bpf.h> / <linux/bpf_common.h>.
const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const ADD64_REG: u8 = 0x0f;
const OR64_REG: u8 = 0x4f;
const AND64_IMM: u8 = 0x57;
const RSH64_IMM: u8 = 0x77;
const XOR64_IMM: u8 = 0xa7;
const LDX_B: u8 = 0x71;
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_DW: u8 = 0x79;
const STX_W: u8 = 0x63;
const STX_H: u8 = 0x6b;
const ATOMIC_DW: u8 = 0xdb;
const LD_IMM64: u8 = 0x18;
const JA: u8 = 0x05;
pub const JEQ_IMM: u8 = 0x15;
pub const JNE_IMM: u8 = 0x55;
pub const JEQ_REG: u8 = 0x1d;
pub const JNE_REG: u8 = 0x5d;
pub const JGT_REG: u8 = 0x2d;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `BPF_PSEUDO_MAP_FD`: the immediate of a 64-bit load is a map descriptor.
const PSEUDO_MAP_FD: u8 = 1;
/// `BPF_ADD` as the immediate of an atomic instruction.
const ATOMIC_ADD: i32 = 0;

const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// Instructions plus the labels they jump to, resolved by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: BTreeMap<&'static str, usize>,
    jumps: Vec<(usize, &'static str)>,
}

impl Asm {
    pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(ins(MOV64_IMM, dst, 0, 0, imm))
    }
    pub fn mov(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(ins(MOV64_REG, dst, src, 0, 0))
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(ins(ADD64_IMM, dst, 0, 0, imm))
    }
    pub fn add(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(ins(ADD64_REG, dst, src, 0, 0))
    }
    pub fn or(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(ins(OR64_REG, dst, src, 0, 0))
    }
    pub fn and_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(ins(AND64_IMM, dst, 0, 0, imm))
    }
    pub fn rsh_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(ins(RSH64_IMM, dst, 0, 0, imm))
    }
    pub fn xor_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(ins(XOR64_IMM, dst, 0, 0, imm))
    }
    /// `dst = *(u8 *)(src + off)`
    pub fn ldx_b(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(ins(LDX_B, dst, src, off, 0))
    }
    /// `dst = *(u32 *)(src + off)`
    pub fn ldx_w(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(ins(LDX_W, dst, src, off, 0))
    }
    /// `dst = *(u64 *)(src + off)`
    pub fn ldx_dw(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(ins(LDX_DW, dst, src, off, 0))
    }
    /// `dst = *(u16 *)(src + off)`
    pub fn ldx_h(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(ins(LDX_H, dst, src, off, 0))
    }
    /// `*(u32 *)(dst + off) = src`
    pub fn stx_w(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(ins(STX_W, dst, src, off, 0))
    }
    /// `*(u16 *)(dst + off) = src`
    pub fn stx_h(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(ins(STX_H, dst, src, off, 0))
    }
    /// `lock *(u64 *)(dst + off) += src`
    pub fn atomic_add_dw(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(ins(ATOMIC_DW, dst, src, off, ATOMIC_ADD))
    }
    /// `dst = map` (the two-slot 64-bit immediate load of a map descriptor).
    pub fn ld_map(&mut self, dst: u8, map_fd: i32) -> &mut Self {
        self.push(ins(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map_fd));
        self.push(ins(0, 0, 0, 0, 0))
    }
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(ins(CALL, 0, 0, 0, helper))
    }
    pub fn exit(&mut self) -> &mut Self {
        self.push(ins(EXIT, 0, 0, 0, 0))
    }
    /// Conditional jump comparing `dst` with an immediate.
    pub fn jmp_imm(&mut self, code: u8, dst: u8, imm: i32, to: &'static str) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.push(ins(code, dst, 0, 0, imm))
    }
    /// Conditional jump comparing `dst` with register `src`.
    pub fn jmp_reg(&mut self, code: u8, dst: u8, src: u8, to: &'static str) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.push(ins(code, dst, src, 0, 0))
    }
    pub fn ja(&mut self, to: &'static str) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.push(ins(JA, 0, 0, 0, 0))
    }
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.insert(name, self.insns.len());
        self
    }
    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// The program with every jump's offset set. Panics on a jump to an undefined or
    /// earlier label — both are mistakes in the fixed program below, caught by its tests
    /// (the verifier rejects backward jumps' loops anyway).
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, to) in std::mem::take(&mut self.jumps) {
            let target = *self
                .labels
                .get(to)
                .unwrap_or_else(|| panic!("undefined label {to}"));
            assert!(target > at, "backward jump to {to}");
            let off = i16::try_from(target - at - 1).unwrap_or_else(|_| panic!("far jump"));
            if let Some(i) = self.insns.get_mut(at) {
                i.off = off;
            }
        }
        self.insns
    }
}
