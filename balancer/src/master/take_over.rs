//! Binary upgrade as the new master: what it took over from the old one,
//! its word that every worker is ready, and a stop of the old master that
//! gives it up as that word comes.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use super::Master;
use crate::log::counted;
use crate::metrics::procfs::proc_stat_text;
use crate::upgrade::inherit::{AfterReady, Inherited, Takeover};

/// As the new master: what is left of the fds handed down once the master
/// took its sockets, and a log line saying what was taken over.
pub(super) fn take_over(inherited: Inherited, local: SocketAddr, control: Option<&Path>) -> Takeover {
    let control = control.map_or_else(String::new, |path| format!(" and the control socket {}", path.display()));
    crate::log!(
        "upgrade: taking over from pid {}: the listener on {local}{control}, served once every worker is ready; \
         this master counts from zero",
        inherited.from()
    );
    inherited.into_takeover()
}

impl Master {
    /// As the new master: tells the old one every worker is ready, and starts serving.
    pub(super) fn report_ready(&mut self) -> io::Result<()> {
        if self.given_up_before_ready() {
            return self.stop_given_up_before_ready();
        }
        if self.upgrades.takeover.is_none() {
            return Ok(());
        }
        // systemd first: the old master, once told, drains and exits, and
        // systemd must know by then that this one is the main process. A
        // `MAINPID=` still waiting for room holds the word back (a tick with
        // room sends it; the old master's `--shutdown-timeout` bounds this).
        self.notify_took_over();
        if !self.main_pid_sent() {
            if !self.upgrades.held_for_systemd {
                self.upgrades.held_for_systemd = true;
                crate::log!(warn:
                    "upgrade: every worker is ready; the old master is told once systemd's notify socket has room for \
                     MAINPID="
                );
            }
            return Ok(());
        }
        let Some(takeover) = self.upgrades.takeover.take() else { return Ok(()) };
        let (from, me) = (takeover.from, std::process::id());
        match takeover.report_ready() {
            Ok(()) => {
                self.upgrades.took_over_from = Some((from, started_at(from)));
                self.upgrades.told = Some(takeover);
                crate::log!("upgrade: every worker is ready: told the old master (pid {from}); pid {me} serves")
            }
            // The old master ended the channel and lives: it gave this one up
            // (late) and serves on. Taking over now would leave two masters
            // accepting, and this one, stopped by the old one, would take the
            // control socket's path with it.
            Err(e) if still_running(from) => {
                crate::log!(warn:
                    "upgrade: every worker is ready, but the old master (pid {from}) gave up waiting ({e}) and serves \
                     on: stopping"
                );
                self.notify_gave_back(from);
                self.upgrades.given_up_by = Some(from);
                return self.stop_now();
            }
            Err(e) => {
                crate::log!(warn: "upgrade: every worker is ready, but the old master (pid {from}) cannot be told: {e}")
            }
        }
        self.dispatch.balance.took_over();
        self.claim_control_path();
        self.arm_accept()?;
        self.arm_control_accept()?;
        self.arm_metrics_accept()
    }

    /// As a new master that said it is ready: the old master stopped it (a
    /// stop there gave the upgrade up with the word unread), and serves on,
    /// through its drain delay if it has one, on the sockets they share.
    /// This one stops at once and leaves them to it: no delay of its own, no
    /// shut of the listeners, the control socket's path left in place, and
    /// systemd's main pid given back. Before, it served its own delay and
    /// then stopped as if alone: whichever master's delay ended first (the
    /// 100 ms ticks decide) answered the queue `503` and shut the listeners
    /// while the other served its delay on (1 to 12 clients refused or
    /// `503` in 8 of 18 such stops), and the first to exit took the control
    /// socket's path with it.
    pub(super) fn given_up_after_ready(&mut self, old: u32) -> io::Result<()> {
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        crate::log!(warn:
            "upgrade: the old master (pid {old}) gave this one up as it stopped: stopping {} at once; \
             it keeps the listeners and the control socket",
            counted(running, "worker")
        );
        self.upgrades.given_up_by = Some(old);
        self.notify_given_up_stopping(old);
        self.hand_over_control()?;
        self.hand_over_metrics()?;
        if self.stopping.is_none() {
            return self.stop_now();
        }
        // A stop already under way (one signal to the whole group): the
        // listeners stay the old master's all the same.
        if let Some(stopping) = self.stopping.as_mut() {
            stopping.stop_listening = false;
        }
        Ok(())
    }

    /// As a new master not yet ready: the old master gave this one up (it
    /// was stopped, or this one was late past `--shutdown-timeout`) and said
    /// so on the channel. Its `SIGTERM` says the same, but reaches only the
    /// process it started: a wrapper that started this one without `exec`
    /// dies of it, and this master, which never heard it, lived on, orphaned
    /// with its workers (until 2026-12-06), and once ready took the control
    /// socket's path though the listeners were shut or the old master's.
    fn given_up_before_ready(&self) -> bool {
        let Some(takeover) = self.upgrades.takeover.as_ref() else { return false };
        self.stopping.is_none() && matches!(takeover.old_master_said(), Ok(AfterReady::GaveUp))
    }

    /// Stops a new master its old master gave up before it was ready: at
    /// once, leaving the listeners as they are (`step_upgrade` says so).
    fn stop_given_up_before_ready(&mut self) -> io::Result<()> {
        let from = self.upgrades.takeover.as_ref().map_or(0, |t| t.from);
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        crate::log!(warn:
            "upgrade: the old master (pid {from}) gave this one up before it was ready: stopping {}",
            counted(running, "worker")
        );
        self.notify_nothing_more();
        self.stop_now()
    }

    /// Each tick, as a new master that said it is ready: what the old master
    /// did with the word. Once it has read it and closed the channel (it
    /// hands over), this master lets go of its end; before, the channel
    /// stayed open for the master's life, one descriptor more after every
    /// upgrade (seen by `scripts/chaos.sh`: 31 descriptors where 30 were).
    /// Given up meanwhile (its stop signal may still be on its way): this
    /// one stops at once, as at that signal. Before it is ready, the same for
    /// a word that it was given up ([`Master::given_up_before_ready`]).
    pub(super) fn watch_old_master_channel(&mut self) -> io::Result<()> {
        if self.given_up_before_ready() {
            return self.stop_given_up_before_ready();
        }
        if self.stopping.is_some() {
            // The stop asks the channel itself (`stop_listening_when_drained`).
            return Ok(());
        }
        match self.given_up_by_channel() {
            Some(old) => self.given_up_after_ready(old),
            None => Ok(()),
        }
    }

    /// As a new master that said it is ready: the old master's pid, if it
    /// said on the channel that it gave the upgrade up (or closed the
    /// channel with the word unread, and runs on). Asked at a stop signal,
    /// whoever sent it (two pending `SIGTERM`s, the old master's and
    /// another's, are one, named after the first sender), and again before
    /// the stop would shut the listeners.
    pub(super) fn given_up_by_channel(&mut self) -> Option<u32> {
        let (old, _) = self.upgrades.took_over_from?;
        let told = self.upgrades.told.as_ref()?;
        let given_up = match told.old_master_said() {
            Ok(AfterReady::Undecided) => return None,
            Ok(AfterReady::GaveUp) => Some(old),
            Ok(AfterReady::ClosedUnread) => still_running(old).then_some(old),
            Ok(AfterReady::Read) => None,
            Err(e) => {
                crate::log!(warn: "upgrade: cannot tell from the old master's (pid {old}) channel what it did: {e}");
                None
            }
        };
        // Decided: the channel says nothing more.
        self.upgrades.told = None;
        given_up.filter(|_| self.upgrades.given_up_by.is_none())
    }
}

/// When process `pid` started (`/proc/PID/stat`'s `starttime`, in clock
/// ticks since boot), if it exists.
pub(super) fn started_at(pid: u32) -> Option<u64> {
    let stat = proc_stat_text(pid)?;
    // After the command name in parentheses, which may hold any byte: the
    // state is field 3, the start time field 22.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn still_running(pid: u32) -> bool {
    let Some(stat) = proc_stat_text(pid) else { return false };
    // The state follows the command name, which is in parentheses and may hold any byte.
    let state = stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn a_process_whose_name_is_not_utf8_is_seen_running() {
        // The kernel names a process after the path it was started by (here a
        // link to `sleep`), cut to 15 bytes: not UTF-8 here.
        let dir = std::env::temp_dir().join(format!("ringmaster-comm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let link = dir.join(OsStr::from_bytes(b"ringmaster-\xff\xfe"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/sleep", &link).expect("a link to sleep");
        let mut child = std::process::Command::new(&link).arg0("sleep").arg("60").spawn().expect("sleep");
        let pid = child.id();
        // The new name comes with the exec, which a loaded machine may not
        // have run yet when spawn returns: until then it is this thread's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let comm = loop {
            let comm = std::fs::read(format!("/proc/{pid}/comm")).expect("its name");
            if comm.starts_with(b"ringmaster-") || std::time::Instant::now() > deadline {
                break comm;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(std::str::from_utf8(&comm).is_err(), "the name is not UTF-8: {comm:?}");
        let (running, started) = (still_running(pid), started_at(pid));
        let stat = crate::metrics::procfs::proc_stat(pid);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(running, "a running process with such a name is running");
        assert!(started.is_some(), "and has a start time");
        assert!(stat.is_some(), "and its resource use");
    }
}
