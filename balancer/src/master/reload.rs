//! Rolling reload: workers are replaced one at a time, the old process
//! retired (`scale.rs`) only once the new one is ready. A new process not
//! ready `--shutdown-timeout` after it started is killed and the reload
//! cancelled, the old process serving on, as when it exits before it is
//! ready; a worker scaled away meanwhile is dropped from the reload.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use super::Master;
use crate::log::counted;

/// A rolling reload under way.
#[derive(Debug, Default)]
pub(super) struct Reload {
    /// Workers still to replace, in order.
    queue: VecDeque<usize>,
    /// The worker being replaced, and the slot of its old process.
    current: Option<(usize, usize)>,
    /// When the current worker's new process must be ready by; cleared once it is.
    ready_by: Option<Instant>,
    /// Processes started so far by the reload under way, if one is (a
    /// cancelled one is not: it logs no end).
    started: Option<usize>,
}

impl Reload {
    /// Workers are being replaced.
    pub(super) fn under_way(&self) -> bool {
        !self.queue.is_empty() || self.current.is_some()
    }

    /// Forgets the workers not yet replaced (the master is stopping, or a
    /// new process could not start or get ready).
    pub(super) fn cancel(&mut self) {
        self.queue.clear();
        self.started = None;
    }
}

impl Master {
    /// Why a reload cannot begin now, if it cannot. One under way is not
    /// merged with a new request, as an upgrade is not: the reply says so,
    /// rather than `ok` for workers that would not all be replaced after it.
    pub(super) fn reload_refusal(&self) -> Option<String> {
        if let Some(refusal) = self.stop_refusal().or_else(|| self.refusal_while_upgrading()) {
            return Some(refusal);
        }
        Some(format!("a reload is already under way {}", self.reload_progress()?))
    }

    /// Why an upgrade cannot begin now: a reload is under way. At the
    /// hand-over this master drains every process, the reload's new one
    /// too, and the reload, answered `ok`, would end without a word (until
    /// 2026-12-07 the upgrade went ahead so: no `reload: done`, no cancel).
    pub(super) fn refusal_while_reloading(&self) -> Option<String> {
        Some(format!("a reload is under way {}: upgrade once it is done", self.reload_progress()?))
    }

    /// Where the reload under way is, if one is: `(worker N being
    /// replaced, M more to go)`.
    fn reload_progress(&self) -> Option<String> {
        if !self.reload.under_way() {
            return None;
        }
        let more = self.reload.queue.len();
        Some(match self.reload.current {
            Some((id, _)) => format!("(worker {id} being replaced, {more} more to go)"),
            None => format!("({} to go)", counted(more, "worker")),
        })
    }

    /// Queues every worker for replacement; how many. The caller has asked
    /// [`Master::reload_refusal`].
    pub(super) fn begin_reload(&mut self) -> io::Result<usize> {
        if self.stop_begun() {
            return Ok(0);
        }
        let ids: Vec<usize> = self.workers.iter().filter(|w| !w.retired).map(|w| w.id).collect();
        for &id in &ids {
            let under_way = self.reload.current.map(|(w, _)| w) == Some(id);
            if !self.reload.queue.contains(&id) && !under_way {
                self.reload.queue.push_back(id);
            }
        }
        crate::log!("reload: replacing {} one at a time", counted(ids.len(), "worker"));
        self.reload.started = Some(0);
        self.counts.reloads += 1;
        self.notify_reloading();
        self.step_reload()?;
        Ok(ids.len())
    }

    /// The process in `slot` is gone: if it was the one being replaced, the
    /// reload moves on.
    pub(super) fn old_process_gone(&mut self, slot: usize) {
        if self.reload.current.is_some_and(|(_, old)| old == slot) {
            self.reload.current = None;
        }
    }

    /// Worker `id` is being scaled away: the reload does not replace it. If
    /// it was the one being replaced and its new process is not ready yet
    /// (its old one not yet retired), the reload stops waiting for it: the
    /// scale-down retires both processes, and the reload goes on with the
    /// next worker once [`Master::step_reload`] runs. Once the new one was
    /// ready, the worker counts as replaced and its old process's exit moves
    /// the reload on, as usual.
    pub(super) fn drop_from_reload(&mut self, id: usize) {
        self.reload.queue.retain(|&queued| queued != id);
        let Some((_, old_slot)) = self.reload.current.filter(|&(current, _)| current == id) else { return };
        if self.slots[old_slot].process.as_ref().is_some_and(|p| p.retiring) {
            return;
        }
        self.reload.current = None;
        self.reload.ready_by = None;
        if let Some(started) = self.reload.started.as_mut() {
            *started = started.saturating_sub(1);
        }
        let new = self.worker_index(id).and_then(|i| self.workers[i].slot).filter(|&s| s != old_slot);
        let pid = new.and_then(|s| self.slots[s].process.as_ref()).map(|p| p.pid);
        let new = pid.map_or_else(|| "its new process".to_string(), |pid| format!("its new process (pid {pid})"));
        crate::log!(info { worker: id }:
            "reload: worker {id} is scaled away before {new} was ready: the reload goes on without it");
    }

    /// Moves the rolling restart on: the next worker gets a new process, and
    /// its old one is retired only once the new one is ready.
    pub(super) fn step_reload(&mut self) -> io::Result<()> {
        loop {
            if let Some((id, old_slot)) = self.reload.current {
                let old_alive = self.slots[old_slot].process.is_some();
                let new_ready = self
                    .worker_index(id)
                    .and_then(|i| self.workers[i].slot)
                    .is_some_and(|s| s != old_slot && self.slots[s].process.as_ref().is_some_and(|p| p.ready));
                if !old_alive {
                    self.reload.current = None;
                    continue;
                }
                if new_ready && !self.slots[old_slot].process.as_ref().is_some_and(|p| p.retiring) {
                    self.reload.ready_by = None;
                    self.retire(old_slot, "reload");
                }
                return Ok(());
            }
            let Some(id) = self.reload.queue.pop_front() else {
                // Whoever waits for the reload to end (to ask for another) sees it here.
                if let Some(started) = self.reload.started.take() {
                    crate::log!("reload: done ({} replaced)", counted(started, "worker"));
                }
                return Ok(());
            };
            let Some(index) = self.worker_index(id) else { continue };
            let worker = &self.workers[index];
            // A worker waiting to restart gets a new process anyway.
            let Some(old_slot) = worker.slot.filter(|_| !worker.retired) else { continue };
            if let Err(e) = self.spawn(id) {
                // Out of fds, processes or memory: the old processes serve on;
                // the master must not go down over a reload.
                crate::log!(error { worker: id }:
                    "reload: cannot start a new process for worker {id}: {e}; the reload stops here, the \
                     workers not yet replaced serve on");
                self.reload.cancel();
                return Ok(());
            }
            self.reload.current = Some((id, old_slot));
            self.reload.ready_by = Some(Instant::now() + self.ready_timeout());
            if let Some(started) = self.reload.started.as_mut() {
                *started += 1;
            }
        }
    }

    /// The process `pid` of worker `id`, gone from `slot` before it was
    /// ready (`how`): if it was the reload's new process, the reload is
    /// cancelled and the old process, made the worker's current one again,
    /// serves on; true then, and no restart is planned for it. Restarted
    /// instead (until 2026-12-06), a new process that could not start (a
    /// `--body-file` gone) was started again and again, and the reload,
    /// under way until one got ready, refused every later one.
    pub(super) fn reload_start_failed(&mut self, id: usize, slot: usize, pid: u32, how: &str) -> bool {
        if self.stop_begun() {
            return false;
        }
        let Some((current, old_slot)) = self.reload.current.filter(|&(current, old)| current == id && old != slot)
        else {
            return false;
        };
        let Some(index) = self.worker_index(id).filter(|&i| self.workers[i].slot == Some(slot)) else { return false };
        let Some(old_pid) = self.slots[old_slot].process.as_ref().filter(|p| !p.retiring).map(|p| p.pid) else {
            return false;
        };
        crate::log!(warn { worker: current, worker_pid: pid }:
            "reload: worker {current}'s new process (pid {pid}) {how} before it was ready: the reload is \
             cancelled, the old process (pid {old_pid}) keeps serving");
        let worker = &mut self.workers[index];
        worker.slot = Some(old_slot);
        worker.last_pid = Some(old_pid);
        self.reload.current = None;
        self.reload.ready_by = None;
        self.reload.cancel();
        true
    }

    /// Each tick: the reload's new process not ready `--shutdown-timeout`
    /// after it started (a start-up that hangs) is killed and the reload
    /// cancelled; the old process, made the worker's current one again,
    /// serves on, and a later reload is accepted. Without this, the reload
    /// (and every later one, refused while it is under way) waits for ever.
    pub(super) fn expire_reload_start(&mut self) {
        let (Some((id, old_slot)), Some(ready_by)) = (self.reload.current, self.reload.ready_by) else { return };
        if Instant::now() < ready_by {
            return;
        }
        self.reload.ready_by = None;
        let Some(index) = self.worker_index(id) else { return };
        let Some(new_slot) = self.workers[index].slot.filter(|&s| s != old_slot) else { return };
        // The old process's exit clears `current`: it is still there.
        let Some(old_pid) = self.slots[old_slot].process.as_ref().map(|p| p.pid) else { return };
        let after = self.ready_timeout_text();
        let Some(new) = self.slots[new_slot].process.as_mut().filter(|p| !p.ready && !p.retiring) else { return };
        let pid = new.pid;
        crate::log!(warn { worker: id, worker_pid: pid }:
            "reload: worker {id}'s new process (pid {pid}) was not ready after {after}: \
             killing it; the reload is cancelled, the old process (pid {old_pid}) keeps serving");
        new.kill("as it was not ready in time");
        // The old process is the worker's own again: the new one's exit restarts nothing.
        let worker = &mut self.workers[index];
        worker.slot = Some(old_slot);
        worker.last_pid = Some(old_pid);
        self.reload.current = None;
        self.reload.cancel();
        self.refresh_routes();
        self.route_held();
    }
}
