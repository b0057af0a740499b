//! The kernel's BPF interface, and every `unsafe` it takes: the raw `bpf(2)`
//! syscall (create a map, update or delete an element, load a program with
//! the verifier's log) and `SO_ATTACH_REUSEPORT_EBPF`. Each command's part
//! of `union bpf_attr` is a `#[repr(C)]` struct of its own; the kernel
//! zero-fills the rest of the union. Fds come back as `OwnedFd` at once.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::insn::Insn;

// `enum bpf_cmd` (linux/bpf.h); libc has none of these.
const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_PROG_LOAD: libc::c_int = 5;

/// `SO_ATTACH_REUSEPORT_EBPF` (asm-generic/socket.h); libc has it for
/// Android only.
const SO_ATTACH_REUSEPORT_EBPF: libc::c_int = 52;

/// Loads tried when the kernel says `EAGAIN`.
const LOAD_ATTEMPTS: u32 = 5;

/// Bytes of verifier log asked for when a program is rejected.
const LOG_SIZE: usize = 1 << 16;

/// `enum bpf_map_type`: the kinds of map used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_ARRAY`: fixed-size values by index, zero at first.
    Array = 2,
    /// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`: `SO_REUSEPORT` sockets by index,
    /// updated with a socket fd; a socket closing leaves its entry by itself.
    ReuseportSockarray = 20,
}

/// `enum bpf_prog_type`: `BPF_PROG_TYPE_SK_REUSEPORT`.
pub const PROG_TYPE_SK_REUSEPORT: u32 = 21;

/// `enum bpf_attach_type`: what an `SK_REUSEPORT` program is loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum AttachType {
    /// `BPF_SK_REUSEPORT_SELECT`: choose a listener for a new connection.
    Select = 39,
    /// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE` (Linux 5.14): also choose where a
    /// closing listener's queued and in-handshake connections move.
    SelectOrMigrate = 40,
}

/// `BPF_F_MMAPABLE`: an `ARRAY` map whose values a process may `mmap`.
pub const MAP_MMAPABLE: u32 = 1 << 10;

/// `BPF_ANY`: create or replace an element.
pub const BPF_ANY: u64 = 0;

/// `union bpf_attr` for `BPF_MAP_CREATE`, up to `map_name`.
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for the element commands.
#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Why the kernel would not load a program.
#[derive(Debug)]
pub struct LoadError {
    /// What `bpf(BPF_PROG_LOAD)` said.
    pub error: io::Error,
    /// The verifier's log (empty when the program never reached it).
    pub log: String,
}

/// `bpf(cmd, attr, sizeof attr)`: the fd or value it returns.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union
    // bpf_attr` of the size passed; the kernel reads (and for some commands
    // writes) only that many bytes. Pointers inside it point to buffers the
    // caller keeps alive for the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as libc::c_uint) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// Takes ownership of the fd a `bpf` command returned.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned no fd"))?;
    // SAFETY: the kernel just created `fd` for this process and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A kernel object name: up to 15 bytes, NUL-padded.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

/// Creates a map (its fd is closed on exec: `bpf(2)` maps are `O_CLOEXEC`).
pub fn create_map(
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type: map_type as u32,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        map_name: object_name(name),
        ..MapCreate::default()
    };
    owned(bpf(BPF_MAP_CREATE, &mut attr)?)
}

/// Sets `map[key] = value`.
pub fn update_elem<K, V>(map: BorrowedFd<'_>, key: &K, value: &V, flags: u64) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key as *const K as u64,
        value: value as *const V as u64,
        flags,
        ..MapElem::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `map[key]`, or `None` when it holds nothing there (`ENOENT`).
pub fn lookup_elem<K, V: Copy + Default>(map: BorrowedFd<'_>, key: &K) -> io::Result<Option<V>> {
    let mut value = V::default();
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key as *const K as u64,
        value: &mut value as *mut V as u64,
        ..MapElem::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Empties `map[key]`; an element already empty is no error.
pub fn delete_elem<K>(map: BorrowedFd<'_>, key: &K) -> io::Result<()> {
    let mut attr = MapElem { map_fd: map.as_raw_fd() as u32, key: key as *const K as u64, ..MapElem::default() };
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// Loads a program of `prog_type` for `attach`. Rejected, it is loaded once
/// more with the verifier's log on, and the log comes back with the error.
pub fn load_program(
    prog_type: u32,
    attach: AttachType,
    insns: &[Insn],
    license: &CStr,
    name: &str,
) -> Result<OwnedFd, LoadError> {
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoad {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            // No log: no buffer either (the kernel refuses a buffer of no size).
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            prog_name: object_name(name),
            expected_attach_type: attach as u32,
            ..ProgLoad::default()
        };
        // The verifier gives up with EAGAIN when a signal is pending; try
        // again, a few times (libbpf does the same).
        let mut attempts = LOAD_ATTEMPTS;
        loop {
            match bpf(BPF_PROG_LOAD, &mut attr) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 => attempts -= 1,
                result => break result.and_then(owned),
            }
        }
    };
    let error = match load(&mut []) {
        Ok(fd) => return Ok(fd),
        Err(error) => error,
    };
    // Only a verifier rejection (EINVAL, EACCES) has a log worth asking for.
    if !matches!(error.raw_os_error(), Some(libc::EINVAL | libc::EACCES)) {
        return Err(LoadError { error, log: String::new() });
    }
    let mut log = vec![0; LOG_SIZE];
    let error = match load(&mut log) {
        Ok(fd) => return Ok(fd),
        Err(error) => error,
    };
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Err(LoadError { error, log: String::from_utf8_lossy(&log[..end]).trim_end().to_owned() })
}

/// Attaches an `SK_REUSEPORT` program to the `SO_REUSEPORT` group of
/// `socket`, a listening member (attached before `listen`, it would stay
/// with a group of its own). It replaces whatever program the group had.
pub fn attach_reuseport(socket: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: `fd` is a live c_int and its size is passed; the kernel copies it.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_EBPF,
            &fd as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many connections wait in a listening socket's accept queue
/// (`TCP_INFO`'s `tcpi_unacked` is the accept backlog for a listener);
/// `InvalidInput` for a socket that is not a TCP listener.
pub fn accept_queue_len(listener: BorrowedFd<'_>) -> io::Result<u32> {
    crate::reactor::sys::accept_queue_len(listener.as_raw_fd())
        .map(|queued| u32::try_from(queued).unwrap_or(u32::MAX))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a TCP listener"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_union_bpf_attr() {
        // Offsets as linux/bpf.h places them (checked with offsetof).
        assert_eq!(size_of::<MapElem>(), 32);
        assert_eq!(std::mem::offset_of!(MapCreate, map_name), 28);
        assert_eq!(std::mem::offset_of!(ProgLoad, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoad, expected_attach_type), 68);
    }

    #[test]
    fn names_are_cut_to_fifteen_bytes_and_nul_padded() {
        assert_eq!(&object_name("steer")[..6], b"steer\0");
        assert_eq!(object_name("a_very_long_map_name")[15], 0);
    }
}
