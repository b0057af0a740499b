//! This process's cgroup limits: the CPU time (a container's `limits.cpu`,
//! `docker run --cpus`) and the memory (`limits.memory`, `docker run -m`)
//! its cgroups allow, on cgroup v2 or v1, wherever the hierarchies are
//! mounted. The process's cgroup comes from `/proc/self/cgroup`, the
//! directory that shows it from `/proc/self/mountinfo`, and the effective
//! limit is the lowest on the way up from it to the top of the mount.
//!
//! The parsing is pure (it takes the files' texts) and the reading of the
//! limit files is passed in, so the tests need no real cgroup.

mod dirs;
mod limit_files;

use std::fs;
use std::path::{Path, PathBuf};

use dirs::cgroup_dirs;
use limit_files::{cpu_limit_in, lowest_on_the_way_up, memory_limit_in};

/// A limit on CPU time, and the file that sets it (the lowest of those on
/// the way up from the process's cgroup).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuQuota {
    /// CPUs' worth of time per period: 1.5 for `150000 100000`.
    pub cpus: f64,
    /// The `cpu.max` or `cpu.cfs_quota_us` it was read from.
    pub file: PathBuf,
}

impl CpuQuota {
    /// The workers it has time for: its CPUs rounded up, at least one.
    pub fn workers(&self) -> usize {
        (self.cpus.ceil() as usize).max(1)
    }
}

/// A limit on memory, and the file that sets it (the lowest of those on the
/// way up from the process's cgroup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// The bytes the cgroup may use.
    pub bytes: u64,
    /// The `memory.max` or `memory.limit_in_bytes` it was read from.
    pub file: PathBuf,
}

/// The process's CPU limit, if any of its cgroups sets one; `None` when
/// none does or the files cannot be read (no cgroup file system mounted).
pub fn cpu_quota() -> Option<CpuQuota> {
    let limits = Limits::of_this_process()?;
    limits.lowest(Controller::Cpu, |dir, version| cpu_limit_in(dir, version, read))
}

/// The process's memory limit, if any of its cgroups sets one; `None` when
/// none does or the files cannot be read.
pub fn memory_limit() -> Option<MemoryLimit> {
    let limits = Limits::of_this_process()?;
    limits.lowest(Controller::Memory, |dir, version| memory_limit_in(dir, version, read))
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// `/proc/self/cgroup` and `/proc/self/mountinfo`, as read once.
struct Limits {
    cgroups: String,
    mountinfo: String,
}

impl Limits {
    fn of_this_process() -> Option<Limits> {
        Some(Limits {
            cgroups: read(Path::new("/proc/self/cgroup"))?,
            mountinfo: read(Path::new("/proc/self/mountinfo"))?,
        })
    }

    /// The lowest of the limits `limit_in` finds (by [`Limit::amount`]) on
    /// the way up from each of the process's cgroups that `controller` may
    /// limit.
    fn lowest<L: Limit>(&self, controller: Controller, limit_in: impl Fn(&Path, Version) -> Option<L>) -> Option<L> {
        cgroup_dirs(controller, &self.cgroups, &self.mountinfo)
            .into_iter()
            .filter_map(|dir| lowest_on_the_way_up(&dir, |level| limit_in(level, dir.version)))
            .min_by(|a, b| a.amount().total_cmp(&b.amount()))
    }
}

/// A limit the lowest of which counts.
trait Limit {
    fn amount(&self) -> f64;
}

impl Limit for CpuQuota {
    fn amount(&self) -> f64 {
        self.cpus
    }
}

impl Limit for MemoryLimit {
    fn amount(&self) -> f64 {
        self.bytes as f64
    }
}

/// The controller a limit belongs to: its v1 hierarchy is the one mounted
/// with this name among its super options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controller {
    Cpu,
    Memory,
}

impl Controller {
    fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
        }
    }
}

/// Which interface a hierarchy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// cgroup v1: `cpu.cfs_quota_us` over `cpu.cfs_period_us`, `memory.limit_in_bytes`.
    V1,
    /// cgroup v2, the unified hierarchy: `cpu.max`, `memory.max`.
    V2,
}

/// One of the process's cgroup directories, with the mount point it lies
/// under (the walk up stops there).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupDir {
    version: Version,
    dir: PathBuf,
    mount: PathBuf,
}

#[cfg(test)]
mod tests;
