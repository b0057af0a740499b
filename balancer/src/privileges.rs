//! Who workers run as: `--user` and `--group` resolved once in the master,
//! passed to each worker as numeric ids, and the switch each worker makes
//! before it serves (setgroups, setgid, setuid, then proof it cannot return).
//!
//! The master stays root, as nginx's does: it binds, will create listeners
//! (`reuseport`), creates the control socket, and signals and re-executes
//! workers. Only the processes that read requests give root up.

use std::ffi::CString;
use std::io;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{getgroups, getppid, getresgid, getresuid, setgid, setgroups, setuid, Gid, Group, Uid, User};

use crate::error::{Context, Error, Result};

/// Environment variable with the uid a worker switches to (absent: it keeps its user).
pub const ENV_UID: &str = "RINGMASTER_UID";
/// Environment variable with the gid a worker switches to (absent: no switch at all).
pub const ENV_GID: &str = "RINGMASTER_GID";
/// Environment variable with a worker's supplementary groups, comma-separated.
pub const ENV_GROUPS: &str = "RINGMASTER_GROUPS";

/// Linux capability numbers (`linux/capability.h`).
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// The ids a worker takes on before it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user (`--user`); `None` keeps the master's (`--group` alone).
    pub uid: Option<u32>,
    /// The group: `--group`, else the user's own.
    pub gid: u32,
    /// Supplementary groups: the user's (as `initgroups` gives them, `gid`
    /// included), or just `gid` with `--group` alone.
    pub groups: Vec<u32>,
}

/// Resolves `--user` and `--group` by name (`getpwnam_r`, `getgrnam_r`,
/// `getgrouplist`), once, in the master; `None` when neither is given. An
/// unknown name, or `--user root`, is an error for the command line.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Credentials>> {
    let config = |message: String| Error::Config(message);
    let group = match group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| config(format!("cannot look up group '{name}' (--group): {e}")))?
                .ok_or_else(|| config(format!("unknown group '{name}' (--group)")))?
                .gid,
        ),
        None => None,
    };
    let Some(name) = user else {
        return Ok(group.map(|gid| Credentials { uid: None, gid: gid.as_raw(), groups: vec![gid.as_raw()] }));
    };
    let user = User::from_name(name)
        .map_err(|e| config(format!("cannot look up user '{name}' (--user): {e}")))?
        .ok_or_else(|| config(format!("unknown user '{name}' (--user)")))?;
    if user.uid.is_root() {
        let why = format!("--user {name} is root: workers would keep every privilege (leave --user out instead)");
        return Err(config(why));
    }
    let gid = group.unwrap_or(user.gid);
    let c_name = CString::new(name).map_err(|_| config(format!("user name '{name}' contains NUL")))?;
    let mut groups: Vec<u32> = nix::unistd::getgrouplist(&c_name, gid)
        .map_err(|e| config(format!("cannot list the groups of user '{name}' (--user): {e}")))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(Some(Credentials { uid: Some(user.uid.as_raw()), gid: gid.as_raw(), groups }))
}

/// Checks, in the master, that workers will be able to switch: it needs
/// `CAP_SETGID`, and `CAP_SETUID` for `--user` (it runs as root, or has them).
pub fn check_can_switch(credentials: &Credentials) -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status to check privileges")?;
    let effective = effective_capabilities(&status)
        .ok_or_else(|| Error::Config("cannot read CapEff in /proc/self/status".to_string()))?;
    let mut needed = vec![(CAP_SETGID, "CAP_SETGID")];
    if credentials.uid.is_some() {
        needed.push((CAP_SETUID, "CAP_SETUID"));
    }
    let missing: Vec<&str> = needed.iter().filter(|(cap, _)| effective & (1 << cap) == 0).map(|(_, n)| *n).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let flag = if credentials.uid.is_some() { "--user" } else { "--group" };
    Err(Error::Config(format!("{flag} needs the master to start as root (it lacks {})", missing.join(" and "))))
}

fn effective_capabilities(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

impl std::fmt::Display for Credentials {
    /// `uid 65534, gid 65534`, or `gid 33` with `--group` alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.uid {
            Some(uid) => write!(f, "uid {uid}, gid {}", self.gid),
            None => write!(f, "gid {}", self.gid),
        }
    }
}

impl Credentials {
    /// The environment a worker is given: `(variable, value)` pairs.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let groups = self.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut env = vec![(ENV_GID, self.gid.to_string()), (ENV_GROUPS, groups)];
        if let Some(uid) = self.uid {
            env.push((ENV_UID, uid.to_string()));
        }
        env
    }

    /// The credentials the master put in this worker's environment, if any.
    pub fn from_env() -> Result<Option<Credentials>> {
        let var = |name: &str| std::env::var(name).ok();
        parse_env(var(ENV_UID).as_deref(), var(ENV_GID).as_deref(), var(ENV_GROUPS).as_deref())
    }
}

fn parse_env(uid: Option<&str>, gid: Option<&str>, groups: Option<&str>) -> Result<Option<Credentials>> {
    let Some(gid) = gid else {
        return match uid {
            Some(_) => Err(Error::WorkerEnv(format!("{ENV_UID} is set without {ENV_GID}"))),
            None => Ok(None),
        };
    };
    let id = |name: &str, text: &str| {
        text.parse::<u32>().map_err(|_| Error::WorkerEnv(format!("{name}={text:?} is not an id")))
    };
    let uid = uid.map(|u| id(ENV_UID, u)).transpose()?;
    let gid = id(ENV_GID, gid)?;
    let groups = groups.unwrap_or_default();
    let groups = groups.split(',').map(|g| id(ENV_GROUPS, g)).collect::<Result<Vec<u32>>>()?;
    Ok(Some(Credentials { uid, gid, groups }))
}

/// Switches this worker to `credentials` (setgroups, setgid, then setuid,
/// each checked), then proves the switch: every uid and gid is the new one,
/// the groups are exactly the new ones, and, with a user, root cannot be
/// regained. Changing ids clears the parent-death signal, so it is set again.
/// Any failure is an error: the worker must not serve.
///
/// `skip_setuid` is fault injection for tests (`RINGMASTER_FAULT=skip-setuid`):
/// the proof must then catch the missing step.
///
/// `keep_ipc_lock`: the worker keeps `CAP_IPC_LOCK`, and no other
/// capability, across the switch of user, so that its io_uring ring is not
/// counted against its new user's `RLIMIT_MEMLOCK` (see `locked_memory.rs`).
pub fn switch_to(credentials: &Credentials, skip_setuid: bool, keep_ipc_lock: bool) -> io::Result<()> {
    let master = getppid();
    let gids: Vec<Gid> = credentials.groups.iter().copied().map(Gid::from_raw).collect();
    setgroups(&gids).map_err(|e| failed(format!("setgroups({:?})", credentials.groups), e))?;
    setgid(Gid::from_raw(credentials.gid)).map_err(|e| failed(format!("setgid({})", credentials.gid), e))?;
    if let Some(uid) = credentials.uid.filter(|_| !skip_setuid) {
        if keep_ipc_lock {
            // The permitted set survives the setuid; capset then trims it.
            nix::sys::prctl::set_keepcaps(true).map_err(|e| failed("prctl(PR_SET_KEEPCAPS)".into(), e))?;
        }
        setuid(Uid::from_raw(uid)).map_err(|e| failed(format!("setuid({uid})"), e))?;
        if keep_ipc_lock {
            crate::capabilities::keep_only(crate::capabilities::CAP_IPC_LOCK)
                .map_err(|e| failed("capset".into(), e))?;
            nix::sys::prctl::set_keepcaps(false).map_err(|e| failed("prctl(PR_SET_KEEPCAPS)".into(), e))?;
        }
    }
    prove(credentials)?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(|e| failed("prctl(PR_SET_PDEATHSIG)".into(), e))?;
    if getppid() != master {
        return Err(io::Error::other("the master exited while the worker was starting"));
    }
    Ok(())
}

fn prove(credentials: &Credentials) -> io::Result<()> {
    let gid = credentials.gid;
    let g = getresgid().map_err(|e| failed("getresgid".into(), e))?;
    let gids = [g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw()];
    if gids != [gid; 3] {
        return Err(io::Error::other(format!("real, effective and saved gid are {gids:?}, not {gid}")));
    }
    let mut groups: Vec<u32> =
        getgroups().map_err(|e| failed("getgroups".into(), e))?.into_iter().map(Gid::as_raw).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut wanted = credentials.groups.clone();
    wanted.sort_unstable();
    wanted.dedup();
    if groups != wanted {
        return Err(io::Error::other(format!("supplementary groups are {groups:?}, not {wanted:?}")));
    }
    let Some(uid) = credentials.uid else { return Ok(()) };
    let u = getresuid().map_err(|e| failed("getresuid".into(), e))?;
    let uids = [u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()];
    if uids != [uid; 3] {
        return Err(io::Error::other(format!("real, effective and saved uid are {uids:?}, not {uid}")));
    }
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other(format!(
            "setuid(0) succeeded after switching to uid {uid}: root can be regained"
        )));
    }
    if gid != 0 && setgid(Gid::from_raw(0)).is_ok() {
        return Err(io::Error::other(format!("setgid(0) succeeded after switching to gid {gid}")));
    }
    Ok(())
}

fn failed(call: String, errno: Errno) -> io::Error {
    io::Error::new(io::Error::from(errno).kind(), format!("{call}: {errno}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_survive_the_environment() {
        let user = Credentials { uid: Some(65534), gid: 65534, groups: vec![65534, 100] };
        let group = Credentials { uid: None, gid: 33, groups: vec![33] };
        for c in [user, group] {
            let env = c.to_env();
            let get = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
            assert_eq!(parse_env(get(ENV_UID), get(ENV_GID), get(ENV_GROUPS)).ok(), Some(Some(c.clone())));
        }
        assert_eq!(parse_env(None, None, None).ok(), Some(None));
        assert!(parse_env(Some("1"), None, None).is_err());
        assert!(parse_env(None, Some("x"), Some("1")).is_err());
        assert!(parse_env(None, Some("1"), Some("1,,2")).is_err());
    }

    #[test]
    fn names_resolve_or_fail_with_one_line() {
        assert_eq!(resolve(None, None).ok(), Some(None));
        let unknown = resolve(Some("ringmaster-no-such-user"), None).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown user 'ringmaster-no-such-user' (--user)");
        assert!(resolve(None, Some("ringmaster-no-such-group")).unwrap_err().to_string().contains("unknown group"));
        assert!(resolve(Some("root"), None).unwrap_err().to_string().contains("root"));
        let group = resolve(None, Some("root")).unwrap().unwrap();
        assert_eq!(group, Credentials { uid: None, gid: 0, groups: vec![0] });
    }

    #[test]
    fn capabilities_come_from_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000000000c0\n";
        assert_eq!(effective_capabilities(status), Some(0xc0));
        assert_eq!(effective_capabilities("Name:\tx\n"), None);
    }
}
