//! Lines of text between the master and its workers, as Node's
//! `worker.send()` and `worker.on('message')`: `ctl PATH send TEXT` queues a
//! line on every worker's lane (its handler's `on_message` gets it), and a
//! line a worker sends (`send_to_master`) goes to the library user's hook, or
//! to the log.

use ringmaster_engine::channel::decode_text;

use super::Master;

impl Master {
    /// Queues `text` for every worker that takes new connections; how many.
    pub(super) fn broadcast(&mut self, text: &str) -> usize {
        let mut queued = 0;
        for slot in self.slots.iter_mut().filter(|s| s.process.as_ref().is_some_and(|p| !p.retiring)) {
            if slot.lane.enqueue_text(text.as_bytes()) {
                queued += 1;
            }
        }
        queued
    }

    /// Hands a line worker slot `index` sent to the hook (or logs it); false
    /// when `message` is not a line of text.
    pub(super) fn take_worker_text(&mut self, index: usize, message: &[u8]) -> bool {
        let Some(text) = decode_text(message) else { return false };
        let text = String::from_utf8_lossy(text);
        let Some((id, pid)) = self.slots.get(index).and_then(|s| s.process.as_ref()).map(|p| (p.worker, p.pid)) else {
            return true;
        };
        match &self.config.on_worker_message {
            Some(hook) => (hook.0)(id, &text),
            None => crate::log!(info { worker: id, worker_pid: pid }: "worker {id} (pid {pid}) says: {text}"),
        }
        true
    }
}
