//! The one `capset(2)` a worker makes: keeping a single capability across
//! its switch to `--user` (nix wraps no capability calls).

use nix::errno::Errno;

/// `CAP_IPC_LOCK`: lock memory beyond `RLIMIT_MEMLOCK`.
pub const CAP_IPC_LOCK: u32 = 14;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Makes `capability` (below 32) this thread's only permitted and effective
/// capability, none inheritable. It must be permitted already (kept across
/// a setuid with `PR_SET_KEEPCAPS`): capset adds none.
pub fn keep_only(capability: u32) -> Result<(), Errno> {
    debug_assert!(capability < 32);
    let header = Header { version: VERSION_3, pid: 0 };
    let bit = 1u32 << capability;
    let data = [Data { effective: bit, permitted: bit, inheritable: 0 }, Data::default()];
    // SAFETY: capset reads a version-3 header and the two data words that
    // version has, both valid for the call; pid 0 is this thread.
    let result = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    Errno::result(result).map(drop)
}
