//! What the master checks every tick: deadlines, restarts, heartbeats,
//! lag, fd limits.

use std::io;
use std::time::Instant;

use super::Master;

impl Master {
    /// What is checked every [`TICK`]: deadlines, restarts, heartbeats, lag, fd limits.
    pub(super) fn tick(&mut self) -> io::Result<()> {
        // What the workers did since the last turn first: the tick can come
        // in the same turn as their news, ahead of it, and after a master
        // that stood still (`SIGSTOP`, a paused machine) past a deadline, a
        // process that got ready meanwhile was killed as never ready (its
        // reload cancelled, a scale-up's worker restarted), and one that
        // exited was said to overrun its drain.
        self.reap()?;
        self.notice_ready()?;
        match self.stopping.as_mut() {
            Some(stopping) if Instant::now() >= stopping.deadline && !stopping.stragglers_killed => {
                crate::log!(warn: "shutdown timeout: killing the workers still running");
                stopping.stragglers_killed = true;
                // Each exit line says why, as a retiree's does (the README
                // promises it): a bare `killed by signal 9` reads as someone else's kill.
                for process in self.slots.iter_mut().filter_map(|s| s.process.as_mut()) {
                    process.kill("after overrunning its drain");
                }
            }
            Some(_) => self.stop_listening_when_drained(),
            None => {
                self.restart_due();
                self.arm_accept()?;
                self.arm_control_accept()?;
            }
        }
        self.close_refused();
        self.end_drain_delay_when_due()?;
        self.arm_metrics_accept()?;
        self.watch_upgrade()?;
        self.watch_old_master_channel()?;
        self.expire_control_clients()?;
        self.bind_control_path_if_gone()?;
        self.expire_scrapes()?;
        self.kill_overdue_retirees();
        self.expire_reload_start();
        self.kill_unready_starts();
        self.watch_heartbeats();
        self.let_go_set_aside_listeners();
        self.close_lanes_of_self_drained();
        self.watch_lagging();
        self.watch_fd_limits();
        self.sample_rates();
        self.notify_tick();
        // Lines a full stdout or stderr did not take go out as it takes them.
        crate::log::sink::flush();
        Ok(())
    }
}
