//! The `bpf(2)` system call, for the in-kernel responder ([`super::kernel_responder`]): maps,
//! loading a program, attaching it to an interface's tcx ingress hook through a BPF link, and
//! test runs. Every `unsafe` block this needs is in this file (the rest of layer 2's is in
//! `sys.rs`).
//!
//! No libbpf and no compiled object file: the program is a few dozen instructions assembled in
//! Rust, so the speaker stays a single static binary and the build needs no clang. The
//! attribute union of `bpf(2)` is filled field by field at the offsets of `<linux/bpf.h>`
//! (stable kernel ABI); the rest of it stays zero, which every command requires.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction as the kernel reads it (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register in the low nibble, source register in the high nibble.
    pub regs: u8,
    /// Signed offset (memory accesses, jumps).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier, run on a socket buffer.
pub(crate) const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS` (Linux 6.6): the multi-program tc ingress hook, attached through a link.
pub(crate) const ATTACH_TCX_INGRESS: u32 = 46;
/// `BPF_F_BEFORE`: with no relative program, put ours first in the interface's tcx chain.
pub(crate) const F_BEFORE: u32 = 1 << 3;
/// `BPF_MAP_TYPE_HASH`.
pub(crate) const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_ARRAY`.
pub(crate) const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_ANY` for map updates: create or replace.
const UPDATE_ANY: u64 = 0;

/// The attribute union of `bpf(2)`; 8-aligned like its `__aligned_u64` members and larger than
/// any member we fill.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }

    fn u32_at(&mut self, offset: usize, value: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, offset: usize, value: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_ne_bytes(b)
    }

    fn ptr_at<T>(&mut self, offset: usize, p: *const T) -> &mut Self {
        self.u64_at(offset, p as usize as u64)
    }
}

/// Runs one `bpf(2)` command and returns its non-negative result.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, 8-aligned buffer of the size passed; every pointer
    // stored in it (by the callers below) points to memory that outlives this call and has the
    // length stored next to it. The kernel reads (and for test runs writes) only within those
    // bounds and keeps no pointer after returning.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<Attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Wraps a descriptor returned by `bpf(2)`.
fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("bpf(2) returned no descriptor"))?;
    // SAFETY: `fd` was just returned by a successful bpf(2) command that creates a descriptor
    // (map, program or link), so it is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: &impl AsRawFd) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `BPF_MAP_CREATE` named `name` (at most 15 bytes are kept).
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32_at(0, map_type)
        .u32_at(4, key_size)
        .u32_at(8, value_size)
        .u32_at(12, max_entries)
        .u32_at(16, flags);
    // map_name: char[16] at offset 28 (after map_flags, inner_map_fd and numa_node).
    let n = name.len().min(15);
    attr.0[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
    owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)
}

/// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`. `key` and `value` must have the map's sizes.
pub(crate) fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(map)?)
        .ptr_at(8, key.as_ptr())
        .ptr_at(16, value.as_ptr())
        .u64_at(24, UPDATE_ANY);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// `BPF_MAP_DELETE_ELEM`; deleting an absent key is not an error.
pub(crate) fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(map)?).ptr_at(8, key.as_ptr());
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_LOOKUP_ELEM` into `value` (the map's value size); `Ok(false)` when absent.
pub(crate) fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(map)?)
        .ptr_at(8, key.as_ptr())
        .ptr_at(16, value.as_mut_ptr().cast_const());
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns` reads in the program.
pub(crate) fn monotonic_ns() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec to the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).map_err(|_| io::Error::other("negative clock"))?;
    let nanos = u64::try_from(ts.tv_nsec).map_err(|_| io::Error::other("negative clock"))?;
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Size of the verifier log asked for when a load fails, enough for this program's trace.
const VERIFIER_LOG: usize = 64 * 1024;

/// `BPF_PROG_LOAD`. When the kernel refuses the program, loads it again with the verifier log
/// on and returns the log's end in the error, which is what explains a rejection.
pub(crate) fn prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[Insn],
    name: &str,
) -> io::Result<OwnedFd> {
    // The project's licence. The helpers the program calls (map lookup, redirect) are not
    // restricted to GPL-compatible programs.
    let license = c"Apache-2.0";
    let count =
        u32::try_from(insns.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = Attr::new();
        attr.u32_at(0, prog_type)
            .u32_at(4, count)
            .ptr_at(8, insns.as_ptr())
            .ptr_at(16, license.as_ptr())
            .u32_at(68, expected_attach_type);
        if let Some(log) = log {
            let size = u32::try_from(log.len()).unwrap_or(u32::MAX);
            attr.u32_at(24, 1).u32_at(28, size).ptr_at(32, log.as_ptr());
        }
        // prog_name: char[16] at offset 48.
        let n = name.len().min(15);
        attr.0[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    match load(None) {
        Ok(rc) => owned_fd(rc),
        Err(first) if first.raw_os_error() == Some(libc::EACCES) => {
            let mut log = vec![0u8; VERIFIER_LOG];
            let _ = load(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(io::Error::new(
                first.kind(),
                format!("the verifier rejected the program: {}", tail.join(" | ")),
            ))
        }
        Err(e) => Err(e),
    }
}

/// `BPF_LINK_CREATE` attaching `prog` to tcx ingress of interface `ifindex`, first in its
/// chain. The program stays attached exactly as long as the returned descriptor is open: when
/// the speaker exits (even by SIGKILL) the kernel closes it and detaches the program, so a
/// dead speaker never goes on answering.
pub(crate) fn link_tcx_ingress(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(prog)?)
        .u32_at(4, ifindex)
        .u32_at(8, ATTACH_TCX_INGRESS)
        .u32_at(12, F_BEFORE);
    owned_fd(bpf(BPF_LINK_CREATE, &mut attr)?)
}

/// `BPF_OBJ_PIN`: gives the object behind `fd` (here a tcx link) a name in a bpffs mount, so
/// that it outlives every descriptor to it, this process's included; it lasts until the file
/// is removed (or the bpffs instance unmounted). Fails with `EPERM` outside a bpffs.
pub(crate) fn obj_pin(fd: &OwnedFd, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr::new();
    attr.ptr_at(0, path.as_ptr()).u32_at(8, fd_u32(fd)?);
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// The result of one [`prog_test_run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value.
    pub retval: u32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
    /// Mean time of one run in nanoseconds, as the kernel measured it over the repetitions.
    pub duration_ns: u32,
}

/// `BPF_PROG_TEST_RUN` of a tc program over `frame` (an Ethernet frame), `repeat` times in a
/// row, in the kernel, on the loopback device: the kernel's own check of what the program does
/// to a packet, and its own timing of it. Nothing is transmitted.
pub(crate) fn prog_test_run(prog: &OwnedFd, frame: &[u8], repeat: u32) -> io::Result<TestRun> {
    let mut out = vec![0u8; frame.len() + 256];
    let size_in =
        u32::try_from(frame.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let size_out =
        u32::try_from(out.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(prog)?)
        .u32_at(8, size_in)
        .u32_at(12, size_out)
        .ptr_at(16, frame.as_ptr())
        .ptr_at(24, out.as_mut_ptr().cast_const())
        .u32_at(32, repeat.max(1));
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    let retval = attr.read_u32(4);
    let len = usize::try_from(attr.read_u32(12))
        .unwrap_or(0)
        .min(out.len());
    out.truncate(len);
    Ok(TestRun {
        retval,
        data: out,
        duration_ns: attr.read_u32(36),
    })
}
