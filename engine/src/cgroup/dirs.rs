//! Where the process's cgroup directories are: `/proc/self/cgroup`'s paths
//! placed under the cgroup mounts `/proc/self/mountinfo` lists.

use std::path::PathBuf;

use super::{CgroupDir, Controller, Version};

/// The process's cgroup directories that may hold a limit of `controller`:
/// the v2 one, and v1's of that controller. `cgroups` is
/// `/proc/self/cgroup`, `mountinfo` `/proc/self/mountinfo`.
pub(super) fn cgroup_dirs(controller: Controller, cgroups: &str, mountinfo: &str) -> Vec<CgroupDir> {
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
pub(super) fn unescape(field: &str) -> String {
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
