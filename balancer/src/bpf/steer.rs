//! [`Steering`]: the loaded steering program and its maps, kept in step
//! with the listeners of one `SO_REUSEPORT` group. Listeners are known by a
//! caller's key (the worker slot) and sit at dense indices `0..count`;
//! removing one moves the last into its place, so the program's random
//! draws never land on a hole for long (and one that does draws again).
//! The sent and accepted counts stay by key, in a map this process (and
//! each worker, for its own key) maps into memory.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use ringmaster_engine::shared_memory::SharedMemory;

use super::program::{
    self, LoadEntry, ACCEPTED_AT, CAPACITY, COUNT_KEY, FLOW_KEY_MAX, FLOW_VALUE_SIZE, SENT_AT, SENT_BASE_AT, TURNED_AT,
    UNAVAILABLE, WAITING_SINCE,
};
use super::sys::{self, AttachType, MapType, BPF_ANY, MAP_MMAPABLE, PROG_TYPE_SK_REUSEPORT};

/// The license the program declares; the helpers it calls need no GPL.
const LICENSE: &CStr = c"Dual MIT/Apache-2.0";

/// Why steering by load cannot be used here: one line for the log.
#[derive(Debug)]
pub struct Unavailable {
    /// What failed and what the kernel said.
    pub reason: String,
    /// The verifier's log, when it rejected the program.
    pub verifier_log: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unavailable {}

/// A reason to go without BPF, saying what the kernel's answer usually means.
fn unavailable(what: &str, e: &io::Error) -> Unavailable {
    let hint = match e.raw_os_error() {
        // Refused to a process that has the capabilities: something else
        // says no (Docker's default seccomp profile answers EPERM).
        Some(libc::EPERM | libc::EACCES) if may_load_bpf(effective_capabilities()) => {
            ": bpf(2) is refused though this process has the capabilities it needs (a container's seccomp \
             profile, a security module such as SELinux or AppArmor, or kernel lockdown?)"
        }
        Some(libc::EPERM | libc::EACCES) => ": loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or root",
        Some(libc::ENOSYS) => ": bpf(2) is blocked here (a container's seccomp profile?)",
        _ => "",
    };
    Unavailable { reason: format!("{what}: {e}{hint}"), verifier_log: String::new() }
}

/// `CAP_NET_ADMIN`, `CAP_SYS_ADMIN` and `CAP_BPF` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// This process's effective capabilities, from the `CapEff:` line of
/// `status` (`/proc/self/status`); none when it cannot be read.
fn effective_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    cap_eff(&status).unwrap_or(0)
}

/// The `CapEff:` mask of a `/proc/PID/status` text.
fn cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// True when the capabilities in `effective` let a process create the maps
/// and load an `SK_REUSEPORT` program: `CAP_SYS_ADMIN`, or `CAP_BPF` with
/// `CAP_NET_ADMIN` (a networking program type).
fn may_load_bpf(effective: u64) -> bool {
    let has = |cap: u32| effective & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN))
}

/// The steering program loaded, its maps and the listeners in them.
#[derive(Debug)]
pub struct Steering {
    socks: OwnedFd,
    load: OwnedFd,
    flow: OwnedFd,
    /// `flow`'s values, mapped.
    flow_memory: SharedMemory,
    prog: OwnedFd,
    attach: AttachType,
    /// The key of the listener at each index.
    keys: Vec<usize>,
    /// The load last written at each index.
    loads: Vec<u32>,
}

impl Steering {
    /// Creates the maps and loads the program, for migration too where the
    /// kernel has it (5.14), else for selection only.
    pub fn load() -> Result<Steering, Unavailable> {
        let socks = sys::create_map(MapType::ReuseportSockarray, 4, 8, CAPACITY, 0, "rm_socks")
            .map_err(|e| unavailable("cannot create a REUSEPORT_SOCKARRAY map", &e))?;
        let load = sys::create_map(MapType::Array, 4, size_of::<LoadEntry>() as u32, CAPACITY + 1, 0, "rm_load")
            .map_err(|e| unavailable("cannot create an ARRAY map", &e))?;
        let flow = sys::create_map(MapType::Array, 4, FLOW_VALUE_SIZE, FLOW_KEY_MAX + 1, MAP_MMAPABLE, "rm_flow")
            .map_err(|e| unavailable("cannot create an mmapable ARRAY map", &e))?;
        let flow_memory = SharedMemory::map_shared(flow.as_fd(), Self::flow_len())
            .map_err(|e| unavailable("cannot map the flow counts", &e))?;
        let maps = [socks.as_raw_fd(), load.as_raw_fd(), flow.as_raw_fd()];
        let mut attach = AttachType::SelectOrMigrate;
        let prog = loop {
            let migrates = attach == AttachType::SelectOrMigrate;
            let insns = program::steering(migrates).resolve(&maps).ok_or_else(|| Unavailable {
                reason: "the program names a map it was not given".into(),
                verifier_log: String::new(),
            })?;
            match sys::load_program(PROG_TYPE_SK_REUSEPORT, attach, &insns, LICENSE, "rm_steer") {
                Ok(prog) => break prog,
                // A kernel before 5.14 knows no SELECT_OR_MIGRATE: select only.
                Err(e) if attach == AttachType::SelectOrMigrate && e.error.raw_os_error() == Some(libc::EINVAL) => {
                    attach = AttachType::Select;
                }
                Err(e) if e.log.is_empty() => return Err(unavailable("cannot load the steering program", &e.error)),
                Err(e) => {
                    return Err(Unavailable {
                        reason: format!("the verifier rejected the steering program: {}", e.error),
                        verifier_log: e.log,
                    })
                }
            }
        };
        let steering = Steering { socks, load, flow, flow_memory, prog, attach, keys: Vec::new(), loads: Vec::new() };
        steering.write_count().map_err(|e| unavailable("cannot write the steering map", &e))?;
        Ok(steering)
    }

    /// True when a closing listener's connections move by the program's
    /// choice (`SELECT_OR_MIGRATE`), whatever `net.ipv4.tcp_migrate_req` says.
    pub fn migrates(&self) -> bool {
        self.attach == AttachType::SelectOrMigrate
    }

    /// Attaches the program to the group `listener` (listening) is in.
    pub fn attach(&self, listener: BorrowedFd<'_>) -> io::Result<()> {
        sys::attach_reuseport(listener, self.prog.as_fd())
    }

    /// The keys of the listeners in the maps, by index.
    pub fn keys(&self) -> &[usize] {
        &self.keys
    }

    /// The load last written for the listener under `key`.
    pub fn load_of(&self, key: usize) -> Option<u32> {
        let index = self.keys.iter().position(|&k| k == key)?;
        self.loads.get(index).copied()
    }

    /// Adds `listener` (listening, in the group) under `key`; it is chosen
    /// once its load says it is available.
    pub fn insert(&mut self, key: usize, listener: BorrowedFd<'_>) -> io::Result<()> {
        if self.keys.contains(&key) {
            return Err(io::Error::other(format!("listener {key} is in the maps already")));
        }
        let index = self.keys.len() as u32;
        if index >= CAPACITY {
            return Err(io::Error::other(format!("the maps hold at most {CAPACITY} listeners")));
        }
        let flow_key = u32::try_from(key).ok().filter(|&k| k <= FLOW_KEY_MAX);
        let flow_key = flow_key.ok_or_else(|| io::Error::other(format!("listener keys go up to {FLOW_KEY_MAX}")))?;
        // A new listener has had nothing sent or accepted, and no worker.
        for at in [SENT_AT, ACCEPTED_AT, TURNED_AT, WAITING_SINCE, SENT_BASE_AT] {
            if let Some(count) = self.flow_count(key, at) {
                count.store(0, Ordering::Relaxed);
            }
        }
        sys::update_elem(self.load.as_fd(), &index, &LoadEntry { load: UNAVAILABLE, flow_key }, BPF_ANY)?;
        sys::update_elem(self.socks.as_fd(), &index, &(listener.as_raw_fd() as u64), BPF_ANY)?;
        self.keys.push(key);
        self.loads.push(UNAVAILABLE);
        self.write_count()
    }

    /// Takes the listener under `key` out of the maps (it is not chosen from
    /// now on); the last one moves into its index, `fd_of` lending its fd.
    pub fn remove<'a>(&mut self, key: usize, fd_of: impl Fn(usize) -> Option<BorrowedFd<'a>>) -> io::Result<()> {
        let Some(index) = self.keys.iter().position(|&k| k == key) else { return Ok(()) };
        let last = self.keys.len() - 1;
        sys::delete_elem(self.socks.as_fd(), &(index as u32))?;
        if index != last {
            let moved = self.keys[last];
            let fd = fd_of(moved).ok_or_else(|| io::Error::other(format!("no listener for {moved}")))?;
            let entry = LoadEntry { load: self.loads[last], flow_key: moved as u32 };
            sys::update_elem(self.load.as_fd(), &(index as u32), &entry, BPF_ANY)?;
            sys::delete_elem(self.socks.as_fd(), &(last as u32))?;
            sys::update_elem(self.socks.as_fd(), &(index as u32), &(fd.as_raw_fd() as u64), BPF_ANY)?;
        }
        self.keys.swap_remove(index);
        self.loads.swap_remove(index);
        self.write_count()
    }

    /// Takes every listener out of the maps, the count first (the program
    /// then places nothing: the kernel's hash decides), so another
    /// process's maps may take them (a socket sits in one socket array at a
    /// time, and this program may stay attached after this process lets it
    /// go). Tries every index; the first error is returned.
    pub fn release_listeners(&mut self) -> io::Result<()> {
        let count = LoadEntry { load: 0, flow_key: 0 };
        let mut result = sys::update_elem(self.load.as_fd(), &COUNT_KEY, &count, BPF_ANY);
        for index in 0..self.keys.len() as u32 {
            let deleted = sys::delete_elem(self.socks.as_fd(), &index);
            result = result.and(deleted);
        }
        self.keys.clear();
        self.loads.clear();
        result
    }

    /// Sets the load of the listener under `key` ([`UNAVAILABLE`]: send it
    /// nothing); a load that did not change costs no syscall.
    pub fn set_load(&mut self, key: usize, load: u32) -> io::Result<()> {
        let Some(index) = self.keys.iter().position(|&k| k == key) else { return Ok(()) };
        if self.loads[index] != load {
            let entry = LoadEntry { load, flow_key: key as u32 };
            sys::update_elem(self.load.as_fd(), &(index as u32), &entry, BPF_ANY)?;
            self.loads[index] = load;
        }
        Ok(())
    }

    /// Starts a new window for the listener under `key`: the program adds
    /// to the load last written what it sends past the base set here, until
    /// the next window. Called as its load is written, with the live count
    /// that load holds. The base is what was accepted then, or what was
    /// sent if less (accepts the program did not send): so a connection in
    /// flight now, sent and not yet accepted, weighs once accepted too,
    /// until the next load counts it live (from the sent count, it weighed
    /// nothing in between).
    pub fn start_window(&self, key: usize) {
        let (Some(sent), Some(accepted), Some(base)) =
            (self.flow_count(key, SENT_AT), self.flow_count(key, ACCEPTED_AT), self.flow_count(key, SENT_BASE_AT))
        else {
            return;
        };
        let sent = sent.load(Ordering::Relaxed);
        base.store(accepted.load(Ordering::Relaxed).min(sent), Ordering::Relaxed);
    }

    /// The map a worker maps to add what it accepts, and where in it the
    /// count of the listener under `key` is (see [`Steering::count_accepted`]).
    pub fn accept_tally(&self, key: usize) -> Option<(BorrowedFd<'_>, usize)> {
        self.flow_count(key, ACCEPTED_AT)?;
        Some((self.flow.as_fd(), Self::flow_offset(key, ACCEPTED_AT)))
    }

    /// Adds `n` to the connections accepted on the listener under `key`, as
    /// its worker does through its own mapping; a negative `n` takes back
    /// accepts counted in excess.
    pub fn count_accepted(&self, key: usize, n: i64) {
        if let Some(count) = self.flow_count(key, ACCEPTED_AT) {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Connections the program sent to the listener under `key` and
    /// connections its workers accepted, as they stand.
    pub fn flow_of(&self, key: usize) -> Option<(u64, u64)> {
        let sent = self.flow_count(key, SENT_AT)?.load(Ordering::Relaxed);
        let accepted = self.flow_count(key, ACCEPTED_AT)?.load(Ordering::Relaxed);
        Some((sent, accepted))
    }

    /// When the loop of the worker on the listener under `key` last woke, as
    /// it noted it (nanoseconds on `CLOCK_MONOTONIC`; 0 before it ever did).
    pub fn turned_at(&self, key: usize) -> Option<u64> {
        Some(self.flow_count(key, TURNED_AT)?.load(Ordering::Relaxed))
    }

    fn flow_count(&self, key: usize, at: usize) -> Option<&AtomicU64> {
        if key > FLOW_KEY_MAX as usize {
            return None;
        }
        self.flow_memory.u64_at(Self::flow_offset(key, at))
    }

    fn flow_offset(key: usize, at: usize) -> usize {
        key * FLOW_VALUE_SIZE as usize + at
    }

    /// Bytes of `flow`'s values (an mmapable array lays them out end to end).
    fn flow_len() -> usize {
        (FLOW_KEY_MAX as usize + 1) * FLOW_VALUE_SIZE as usize
    }

    fn write_count(&self) -> io::Result<()> {
        let entry = LoadEntry { load: self.keys.len() as u32, flow_key: 0 };
        sys::update_elem(self.load.as_fd(), &COUNT_KEY, &entry, BPF_ANY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_capabilities_come_from_the_status_text() {
        let status = "Name:\tringmaster\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(cap_eff(status), Some(0x01ff_ffff_ffff));
        assert_eq!(cap_eff("Name:\tx\n"), None);
        assert_eq!(cap_eff("CapEff:\tnot hex\n"), None);
    }

    #[test]
    fn loading_needs_sys_admin_or_bpf_with_net_admin() {
        let caps = |list: &[u32]| list.iter().fold(0u64, |mask, &cap| mask | 1 << cap);
        assert!(may_load_bpf(0x01ff_ffff_ffff), "root");
        assert!(may_load_bpf(caps(&[CAP_SYS_ADMIN])));
        assert!(may_load_bpf(caps(&[CAP_BPF, CAP_NET_ADMIN])));
        assert!(!may_load_bpf(caps(&[CAP_BPF])), "a networking program type needs CAP_NET_ADMIN too");
        assert!(!may_load_bpf(caps(&[CAP_NET_ADMIN])));
        assert!(!may_load_bpf(0));
    }
}
