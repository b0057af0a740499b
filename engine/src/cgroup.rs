//! This process's cgroup limits: the CPU time (a container's `limits.cpu`,
//! `docker run --cpus`) and the memory (`limits.memory`, `docker run -m`)
//! its cgroups allow, on cgroup v2 or v1, wherever the hierarchies are
//! mounted. The process's cgroup comes from `/proc/self/cgroup`, the
//! directory that shows it from `/proc/self/mountinfo`, and the effective
//! limit is the lowest on the way up from it to the top of the mount.
//!
//! The parsing is pure (it takes the files' texts) and the reading of the
//! limit files is passed in, so the tests need no real cgroup.

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

/// The process's cgroup directories that may hold a limit of `controller`:
/// the v2 one, and v1's of that controller. `cgroups` is
/// `/proc/self/cgroup`, `mountinfo` `/proc/self/mountinfo`.
fn cgroup_dirs(controller: Controller, cgroups: &str, mountinfo: &str) -> Vec<CgroupDir> {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let mut dirs = Vec::new();
    for line in cgroups.lines() {
        // hierarchy-ID:controller-list:cgroup-path
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            Version::V2
        } else if controllers.split(',').any(|c| c == controller.v1_name()) {
            Version::V1
        } else {
            continue;
        };
        // Of the mounts that show this cgroup, the one that shows the most
        // of the hierarchy above it (the shortest root): the walk up sees
        // every limit that one shows.
        let found = mounts
            .iter()
            .filter(|mount| mount.shows(version, controller))
            .filter_map(|mount| mount.dir_of(path).map(|dir| (mount.root.len(), dir, &mount.point)))
            .min_by_key(|(root_len, _, _)| *root_len);
        if let Some((_, dir, mount)) = found {
            dirs.push(CgroupDir { version, dir, mount: mount.clone() });
        }
    }
    dirs
}

/// A cgroup file system's line of `mountinfo`, such as `30 24 0:25 /
/// /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu` (after ` - `: type,
/// source, super options), its paths unescaped.
#[derive(Debug)]
struct Mount {
    /// The cgroup shown at the mount point, relative to this process's
    /// cgroup namespace's root, as `/proc/self/cgroup`'s paths are.
    root: String,
    point: PathBuf,
    cgroup2: bool,
    /// For v1, the controllers (and `name=`) of the hierarchy.
    options: String,
}

impl Mount {
    fn parse(line: &str) -> Option<Mount> {
        let (mount, fs) = line.split_once(" - ")?;
        let mut mount = mount.split(' ');
        let (root, point) = (mount.nth(3)?, mount.next()?);
        let mut fs = fs.split(' ');
        let (kind, options) = (fs.next()?, fs.nth(1).unwrap_or(""));
        let cgroup2 = match kind {
            "cgroup2" => true,
            "cgroup" => false,
            _ => return None,
        };
        Some(Mount {
            root: unescape(root),
            point: PathBuf::from(unescape(point)),
            cgroup2,
            options: options.to_owned(),
        })
    }

    fn shows(&self, version: Version, controller: Controller) -> bool {
        match version {
            Version::V2 => self.cgroup2,
            Version::V1 => !self.cgroup2 && self.options.split(',').any(|o| o == controller.v1_name()),
        }
    }

    /// The directory of cgroup `path` (a `/proc/self/cgroup` path) under
    /// this mount: the mount point and what of `path` lies below the
    /// mount's root, as runc joins them (`filepath.Rel(root, cgroup)`).
    /// `None` when the cgroup is outside what the mount shows, except
    /// for a cgroup at its namespace's root (`/`) on a mount of another
    /// root: there the mount is taken for the namespace's own cgroup, as
    /// runtimes that bind-mount a container's cgroup into it arrange (and
    /// as the JVM and runc take it); `/..` roots, above the namespace,
    /// cannot be placed and are left.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let below = if root.is_empty() {
            Some(path)
        } else if path == root {
            Some("")
        } else {
            path.strip_prefix(root).filter(|rest| rest.starts_with('/'))
        };
        match below {
            Some(below) => Some(self.point.join(below.trim_start_matches('/'))),
            None if path == "/" && !self.root.starts_with("/..") => Some(self.point.clone()),
            None => None,
        }
    }
}

/// A `mountinfo` path with the kernel's octal escapes (`\040` space, `\011`
/// tab, `\012` newline, `\134` backslash) turned back into their bytes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'))) {
            Some(value) if value <= 0xFF => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lowest limit `limit_in` finds from `dir` up to its mount point.
fn lowest_on_the_way_up<L: Limit>(dir: &CgroupDir, limit_in: impl Fn(&Path) -> Option<L>) -> Option<L> {
    dir.dir.ancestors().take_while(|level| level.starts_with(&dir.mount)).filter_map(limit_in).fold(
        None,
        |lowest: Option<L>, found| match lowest {
            Some(lowest) if lowest.amount() <= found.amount() => Some(lowest),
            _ => Some(found),
        },
    )
}

/// The CPU limit set in the one cgroup directory `dir`.
fn cpu_limit_in(dir: &Path, version: Version, read: impl Fn(&Path) -> Option<String>) -> Option<CpuQuota> {
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
fn memory_limit_in(dir: &Path, version: Version, read: impl Fn(&Path) -> Option<String>) -> Option<MemoryLimit> {
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
fn bytes_of_memory_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < NO_MEMORY_LIMIT).then_some(bytes)
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
33 22 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
";

    fn dir(version: Version, dir: &str, mount: &str) -> CgroupDir {
        CgroupDir { version, dir: dir.into(), mount: mount.into() }
    }

    fn files<'a>(files: &'a [(&str, &str)]) -> impl Fn(&Path) -> Option<String> + 'a {
        let files: HashMap<&str, &str> = files.iter().copied().collect();
        move |p: &Path| p.to_str().and_then(|p| files.get(p)).map(|s| s.to_string())
    }

    #[test]
    fn finds_the_v2_and_the_v1_directories_of_a_controller() {
        let cgroups =
            "12:cpuset:/a\n5:memory:/kubepods/pod1/c1\n4:cpu,cpuacct:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
        assert_eq!(
            cgroup_dirs(Controller::Cpu, cgroups, MOUNTINFO),
            [
                dir(Version::V1, "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1", "/sys/fs/cgroup/cpu,cpuacct"),
                dir(Version::V2, "/sys/fs/cgroup/kubepods/pod1/c1", "/sys/fs/cgroup"),
            ]
        );
        assert_eq!(
            cgroup_dirs(Controller::Memory, cgroups, MOUNTINFO),
            [
                dir(Version::V1, "/sys/fs/cgroup/memory/kubepods/pod1/c1", "/sys/fs/cgroup/memory"),
                dir(Version::V2, "/sys/fs/cgroup/kubepods/pod1/c1", "/sys/fs/cgroup"),
            ]
        );
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_is_followed_from_its_root() {
        // A container's view: its own cgroup mounted at /sys/fs/cgroup.
        let mountinfo = "40 30 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        let expected = [dir(Version::V2, "/sys/fs/cgroup", "/sys/fs/cgroup")];
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/docker/abc\n", mountinfo), expected);
        let below = [dir(Version::V2, "/sys/fs/cgroup/sub", "/sys/fs/cgroup")];
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/docker/abc/sub\n", mountinfo), below);
        // A cgroup outside the mounted part cannot be reached, nor one whose
        // name only starts with the root's.
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/elsewhere\n", mountinfo), []);
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/docker/abcdef\n", mountinfo), []);
        // No cgroup file system mounted at all.
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/\n", "22 1 0:21 / /sys rw - sysfs sysfs rw\n"), []);
    }

    #[test]
    fn at_its_namespace_root_the_process_is_in_the_mounted_cgroup() {
        // A cgroup namespace whose root is the container's cgroup, with
        // that cgroup bind-mounted from outside: `0::/`, root `/docker/abc`.
        let mountinfo = "40 30 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let expected = [dir(Version::V2, "/sys/fs/cgroup", "/sys/fs/cgroup")];
        assert_eq!(cgroup_dirs(Controller::Memory, "0::/\n", mountinfo), expected);
        // A mount from above the namespace's root cannot be placed.
        let above = "40 30 0:26 /../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_dirs(Controller::Memory, "0::/\n", above), []);
    }

    #[test]
    fn of_several_cgroup2_mounts_the_one_that_shows_the_cgroup_and_most_above_it() {
        let mountinfo = "\
40 30 0:26 /other /mnt/other rw - cgroup2 cgroup2 rw
41 30 0:26 /a /mnt/a rw - cgroup2 cgroup2 rw
30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        let expected = [dir(Version::V2, "/sys/fs/cgroup/a/b", "/sys/fs/cgroup")];
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/a/b\n", mountinfo), expected);
        // Only a part shows it: that part.
        let part =
            "40 30 0:26 /other /mnt/other rw - cgroup2 cgroup2 rw\n41 30 0:26 /a /mnt/a rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_dirs(Controller::Cpu, "0::/a/b\n", part), [dir(Version::V2, "/mnt/a/b", "/mnt/a")]);
    }

    #[test]
    fn mount_points_and_roots_are_unescaped() {
        let mountinfo = "\
30 22 0:26 /a\\040b /mnt/cgroup\\040v2\\011tab\\012nl\\134bs rw - cgroup2 cgroup2 rw
31 22 0:27 / /mnt/v1\\040memory rw - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup_dirs(Controller::Memory, "3:memory:/x\n0::/a b/c\n", mountinfo),
            [
                dir(Version::V1, "/mnt/v1 memory/x", "/mnt/v1 memory"),
                dir(Version::V2, "/mnt/cgroup v2\ttab\nnl\\bs/c", "/mnt/cgroup v2\ttab\nnl\\bs"),
            ]
        );
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("a\\1"), "a\\1", "too short for an escape");
        assert_eq!(unescape("a\\08x"), "a\\08x", "8 is not octal");
    }

    #[test]
    fn the_lowest_cpu_limit_on_the_way_up_wins() {
        let read = files(&[
            ("/cg/a/cpu.max", "400000 100000\n"),
            ("/cg/a/b/cpu.max", "150000 100000\n"),
            ("/cg/a/b/c/cpu.max", "max 100000\n"),
        ]);
        let c = dir(Version::V2, "/cg/a/b/c", "/cg");
        let quota = lowest_on_the_way_up(&c, |level| cpu_limit_in(level, Version::V2, &read)).unwrap();
        assert_eq!((quota.cpus, quota.file.to_str().unwrap()), (1.5, "/cg/a/b/cpu.max"));
        assert_eq!(quota.workers(), 2);
        let x = dir(Version::V2, "/cg/x", "/cg");
        assert_eq!(lowest_on_the_way_up(&x, |level| cpu_limit_in(level, Version::V2, &read)), None);
    }

    #[test]
    fn v1_cpu_reads_quota_over_period_and_minus_one_is_none() {
        let read = files(&[
            ("/v1/cpu.cfs_quota_us", "-1\n"),
            ("/v1/cpu.cfs_period_us", "100000\n"),
            ("/v1/p/cpu.cfs_quota_us", "50000\n"),
            ("/v1/p/cpu.cfs_period_us", "100000\n"),
        ]);
        let p = dir(Version::V1, "/v1/p", "/v1");
        let quota = lowest_on_the_way_up(&p, |level| cpu_limit_in(level, Version::V1, &read)).unwrap();
        assert_eq!(quota.cpus, 0.5);
        assert_eq!(quota.workers(), 1, "at least one");
        let top = dir(Version::V1, "/v1", "/v1");
        assert_eq!(lowest_on_the_way_up(&top, |level| cpu_limit_in(level, Version::V1, &read)), None);
    }

    #[test]
    fn the_memory_limit_is_read_on_v1_where_unlimited_is_a_huge_number() {
        let read = files(&[
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"),
            ("/sys/fs/cgroup/memory/app/memory.limit_in_bytes", "536870912\n"),
            ("/sys/fs/cgroup/memory/free/memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        let limit = |path: &str| {
            let d = dir(Version::V1, path, "/sys/fs/cgroup/memory");
            lowest_on_the_way_up(&d, |level| memory_limit_in(level, Version::V1, &read))
        };
        let app = limit("/sys/fs/cgroup/memory/app").unwrap();
        assert_eq!(
            (app.bytes, app.file.to_str().unwrap()),
            (536_870_912, "/sys/fs/cgroup/memory/app/memory.limit_in_bytes")
        );
        assert_eq!(limit("/sys/fs/cgroup/memory/free"), None);
        assert_eq!(bytes_of_memory_limit("9223372036854710272"), None, "unlimited with 64 KiB pages");
    }

    #[test]
    fn the_memory_limit_comes_from_an_ancestor() {
        // v2: the service's slice sets it, the service none.
        let read = files(&[
            ("/sys/fs/cgroup/system.slice/memory.max", "1073741824\n"),
            ("/sys/fs/cgroup/system.slice/ringmaster.service/memory.max", "max\n"),
        ]);
        let d = dir(Version::V2, "/sys/fs/cgroup/system.slice/ringmaster.service", "/sys/fs/cgroup");
        let limit = lowest_on_the_way_up(&d, |level| memory_limit_in(level, Version::V2, &read)).unwrap();
        assert_eq!((limit.bytes, limit.file.to_str().unwrap()), (1 << 30, "/sys/fs/cgroup/system.slice/memory.max"));
        // v1 (hierarchical): the parent's lower limit over the child's.
        let read =
            files(&[("/m/p/memory.limit_in_bytes", "268435456\n"), ("/m/p/c/memory.limit_in_bytes", "536870912\n")]);
        let d = dir(Version::V1, "/m/p/c", "/m");
        let limit = lowest_on_the_way_up(&d, |level| memory_limit_in(level, Version::V1, &read)).unwrap();
        assert_eq!((limit.bytes, limit.file.to_str().unwrap()), (256 << 20, "/m/p/memory.limit_in_bytes"));
    }

    #[test]
    fn malformed_limits_are_no_limits() {
        for text in ["", "max", "0 100000", "100000 0", "x 100000", "-5 100000"] {
            assert_eq!(cpus_of_cpu_max(text), None, "{text:?}");
        }
        assert_eq!(cpus_of_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(cpus_of_v1("abc", "100000"), None);
        assert_eq!(cpus_of_v1("-1", "100000"), None);
        for text in ["", "max", "-1", "1.5G"] {
            assert_eq!(bytes_of_memory_limit(text), None, "{text:?}");
        }
        assert_eq!(bytes_of_memory_limit("4096\n"), Some(4096));
    }
}
