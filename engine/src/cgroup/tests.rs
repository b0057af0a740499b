//! The cgroup files parsed from their texts: directories found through
//! mountinfo, limits read on v1 and v2, the lowest on the way up.

use super::dirs::unescape;
use super::limit_files::{bytes_of_memory_limit, cpus_of_cpu_max, cpus_of_v1};
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
    let cgroups = "12:cpuset:/a\n5:memory:/kubepods/pod1/c1\n4:cpu,cpuacct:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
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
    let part = "40 30 0:26 /other /mnt/other rw - cgroup2 cgroup2 rw\n41 30 0:26 /a /mnt/a rw - cgroup2 cgroup2 rw\n";
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
    let read = files(&[("/m/p/memory.limit_in_bytes", "268435456\n"), ("/m/p/c/memory.limit_in_bytes", "536870912\n")]);
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
