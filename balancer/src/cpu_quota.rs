//! The CPU time this process's cgroups allow, in CPUs: a container's CPU
//! limit (Kubernetes `limits.cpu`, `docker run --cpus`), set as cgroup v2's
//! `cpu.max` or v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us` on the
//! process's cgroup or any above it. Without `--workers` and `--cpus` the
//! master runs no more workers than that, rounded up, as Go's `GOMAXPROCS`
//! (1.25) and Java's `availableProcessors()` do: one worker per CPU of a
//! 64-CPU node under a limit of 2 would be 64 processes sharing 2 CPUs of
//! time, throttled in turn.

use std::fs;
use std::path::{Path, PathBuf};

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

/// The process's CPU limit, if any of its cgroups sets one; `None` when
/// none does or the files cannot be read (no cgroup file system mounted).
pub fn cpu_quota() -> Option<CpuQuota> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let read = |path: &Path| fs::read_to_string(path).ok();
    cgroup_dirs(&cgroups, &mountinfo)
        .into_iter()
        .filter_map(|(version, dir, mount)| lowest_limit(version, &dir, &mount, read))
        .min_by(|a, b| a.cpus.total_cmp(&b.cpus))
}

/// Which interface a hierarchy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// cgroup v1's `cpu` controller: `cpu.cfs_quota_us`, `cpu.cfs_period_us`.
    V1,
    /// cgroup v2: `cpu.max`.
    V2,
}

/// The process's cgroup directories that may hold a CPU limit, each with
/// the mount point it lies under: the v2 one, and v1's `cpu` controller's.
/// `cgroups` is `/proc/self/cgroup`, `mountinfo` `/proc/self/mountinfo`.
fn cgroup_dirs(cgroups: &str, mountinfo: &str) -> Vec<(Version, PathBuf, PathBuf)> {
    let mut dirs = Vec::new();
    for line in cgroups.lines() {
        // hierarchy-ID:controller-list:cgroup-path
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            Version::V2
        } else if controllers.split(',').any(|c| c == "cpu") {
            Version::V1
        } else {
            continue;
        };
        if let Some((root, mount)) = mount_of(version, mountinfo) {
            // The cgroup's path is the namespace's; the mount shows `root` of it.
            let relative = if root == "/" { Some(path) } else { path.strip_prefix(root.as_str()) };
            if let Some(relative) = relative {
                dirs.push((version, mount.join(relative.trim_start_matches('/')), mount));
            }
        }
    }
    dirs
}

/// The root and mount point of the hierarchy `version` names, from
/// `mountinfo` lines such as `30 24 0:25 / /sys/fs/cgroup/cpu rw - cgroup
/// cgroup rw,cpu` (fields after ` - `: type, source, super options).
fn mount_of(version: Version, mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut mount = mount.split(' ');
        let (root, point) = (mount.nth(3)?, mount.next()?);
        let mut fs = fs.split(' ');
        let (kind, options) = (fs.next()?, fs.nth(1).unwrap_or(""));
        let matches = match version {
            Version::V2 => kind == "cgroup2",
            Version::V1 => kind == "cgroup" && options.split(',').any(|o| o == "cpu"),
        };
        matches.then(|| (root.to_owned(), PathBuf::from(point)))
    })
}

/// The lowest limit from `dir` up to `mount`, each level read by `read`.
fn lowest_limit(
    version: Version,
    dir: &Path,
    mount: &Path,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<CpuQuota> {
    let mut lowest: Option<CpuQuota> = None;
    for level in dir.ancestors().take_while(|level| level.starts_with(mount)) {
        let found = match version {
            Version::V2 => {
                let file = level.join("cpu.max");
                read(&file).and_then(|text| cpus_of_cpu_max(&text)).map(|cpus| CpuQuota { cpus, file })
            }
            Version::V1 => {
                let file = level.join("cpu.cfs_quota_us");
                let quota = read(&file);
                let period = read(&level.join("cpu.cfs_period_us"));
                quota.zip(period).and_then(|(q, p)| cpus_of_v1(&q, &p)).map(|cpus| CpuQuota { cpus, file })
            }
        };
        if let Some(found) = found.filter(|f| lowest.as_ref().is_none_or(|l| f.cpus < l.cpus)) {
            lowest = Some(found);
        }
    }
    lowest
}

/// `cpu.max`: `max 100000` (no limit) or `QUOTA PERIOD` in microseconds.
fn cpus_of_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    ratio(quota.parse().ok()?, period.parse().ok()?)
}

/// v1's quota (`-1`: no limit) and period, in microseconds.
fn cpus_of_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    ratio(u64::try_from(quota).ok()?, period.trim().parse().ok()?)
}

fn ratio(quota: u64, period: u64) -> Option<f64> {
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MOUNTINFO: &str = "\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 22 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
32 22 0:28 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset
";

    #[test]
    fn finds_the_v2_and_the_v1_cpu_directories() {
        let cgroups = "12:cpuset:/a\n4:cpu,cpuacct:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
        assert_eq!(
            cgroup_dirs(cgroups, MOUNTINFO),
            [
                (
                    Version::V1,
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1"),
                    "/sys/fs/cgroup/cpu,cpuacct".into()
                ),
                (Version::V2, PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1"), "/sys/fs/cgroup".into()),
            ]
        );
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_is_followed_from_its_root() {
        // A container's view: its own cgroup mounted at /sys/fs/cgroup.
        let mountinfo = "40 30 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dirs("0::/docker/abc\n", mountinfo),
            [(Version::V2, PathBuf::from("/sys/fs/cgroup"), "/sys/fs/cgroup".into())]
        );
        // A cgroup outside the mounted part cannot be reached.
        assert_eq!(cgroup_dirs("0::/elsewhere\n", mountinfo), []);
        // No cgroup file system mounted at all.
        assert_eq!(cgroup_dirs("0::/\n", "22 1 0:21 / /sys rw - sysfs sysfs rw\n"), []);
    }

    #[test]
    fn the_lowest_limit_on_the_way_up_wins() {
        let files: HashMap<&str, &str> = [
            ("/cg/a/cpu.max", "400000 100000\n"),
            ("/cg/a/b/cpu.max", "150000 100000\n"),
            ("/cg/a/b/c/cpu.max", "max 100000\n"),
        ]
        .into();
        let read = |p: &Path| files.get(p.to_str().unwrap()).map(|s| s.to_string());
        let quota = lowest_limit(Version::V2, Path::new("/cg/a/b/c"), Path::new("/cg"), read).unwrap();
        assert_eq!((quota.cpus, quota.file.to_str().unwrap()), (1.5, "/cg/a/b/cpu.max"));
        assert_eq!(quota.workers(), 2);
        assert_eq!(lowest_limit(Version::V2, Path::new("/cg/x"), Path::new("/cg"), read), None);
    }

    #[test]
    fn v1_reads_quota_over_period_and_minus_one_is_none() {
        let files: HashMap<&str, &str> = [
            ("/v1/cpu.cfs_quota_us", "-1\n"),
            ("/v1/cpu.cfs_period_us", "100000\n"),
            ("/v1/p/cpu.cfs_quota_us", "50000\n"),
            ("/v1/p/cpu.cfs_period_us", "100000\n"),
        ]
        .into();
        let read = |p: &Path| files.get(p.to_str().unwrap()).map(|s| s.to_string());
        let quota = lowest_limit(Version::V1, Path::new("/v1/p"), Path::new("/v1"), read).unwrap();
        assert_eq!(quota.cpus, 0.5);
        assert_eq!(quota.workers(), 1, "at least one");
        assert_eq!(lowest_limit(Version::V1, Path::new("/v1"), Path::new("/v1"), read), None);
    }

    #[test]
    fn malformed_limits_are_no_limits() {
        for text in ["", "max", "0 100000", "100000 0", "x 100000", "-5 100000"] {
            assert_eq!(cpus_of_cpu_max(text), None, "{text:?}");
        }
        assert_eq!(cpus_of_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(cpus_of_v1("abc", "100000"), None);
        assert_eq!(cpus_of_v1("-1", "100000"), None);
    }
}
