//! The limit files of one cgroup directory read (`cpu.max`, v1's quota and
//! period, `memory.max`, `memory.limit_in_bytes`), and the lowest of them
//! on the way up.

use std::path::Path;

use super::{CgroupDir, CpuQuota, Limit, MemoryLimit, Version};

/// The lowest limit `limit_in` finds from `dir` up to its mount point.
pub(super) fn lowest_on_the_way_up<L: Limit>(dir: &CgroupDir, limit_in: impl Fn(&Path) -> Option<L>) -> Option<L> {
    dir.dir.ancestors().take_while(|level| level.starts_with(&dir.mount)).filter_map(limit_in).fold(
        None,
        |lowest: Option<L>, found| match lowest {
            Some(lowest) if lowest.amount() <= found.amount() => Some(lowest),
            _ => Some(found),
        },
    )
}

/// The CPU limit set in the one cgroup directory `dir`.
pub(super) fn cpu_limit_in(dir: &Path, version: Version, read: impl Fn(&Path) -> Option<String>) -> Option<CpuQuota> {
    match version {
        Version::V2 => {
            let file = dir.join("cpu.max");
            read(&file).and_then(|text| cpus_of_cpu_max(&text)).map(|cpus| CpuQuota { cpus, file })
        }
        Version::V1 => {
            let file = dir.join("cpu.cfs_quota_us");
            let quota = read(&file);
            let period = read(&dir.join("cpu.cfs_period_us"));
            quota.zip(period).and_then(|(q, p)| cpus_of_v1(&q, &p)).map(|cpus| CpuQuota { cpus, file })
        }
    }
}

/// The memory limit set in the one cgroup directory `dir`.
pub(super) fn memory_limit_in(
    dir: &Path,
    version: Version,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<MemoryLimit> {
    let file = dir.join(match version {
        Version::V2 => "memory.max",
        Version::V1 => "memory.limit_in_bytes",
    });
    read(&file).and_then(|text| bytes_of_memory_limit(&text)).map(|bytes| MemoryLimit { bytes, file })
}

/// Bytes at or above this are no limit: v1 writes "unlimited" as
/// `PAGE_COUNTER_MAX` pages, `LONG_MAX` rounded down to a page
/// (9223372036854771712 with 4 KiB pages, 9223372036854710272 with 64 KiB),
/// and no real limit comes near 2^62 bytes (4 EiB).
const NO_MEMORY_LIMIT: u64 = 1 << 62;

/// `memory.max` (`max`: no limit) or `memory.limit_in_bytes` (a huge
/// number: no limit), in bytes.
pub(super) fn bytes_of_memory_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < NO_MEMORY_LIMIT).then_some(bytes)
}

/// `cpu.max`: `max 100000` (no limit) or `QUOTA PERIOD` in microseconds.
pub(super) fn cpus_of_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    ratio(quota.parse().ok()?, period.parse().ok()?)
}

/// v1's quota (`-1`: no limit) and period, in microseconds.
pub(super) fn cpus_of_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    ratio(u64::try_from(quota).ok()?, period.trim().parse().ok()?)
}

fn ratio(quota: u64, period: u64) -> Option<f64> {
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}
