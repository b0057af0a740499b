//! Lines of text between the master and its workers, as Node's
//! `worker.send()` and `worker.on('message')`: `ctl PATH send TEXT` queues a
//! line on every worker's lane (its handler's `on_message` gets it), and a
//! line a worker sends (`send_to_master`) goes to the library user's hook, or
//! to the log.

use ringmaster_engine::channel::decode_text;
use ringmaster_engine::panic_guard::Call;

use crate::handoff::lanes::MOST_TEXT_QUEUED;
use crate::log::counted;

use super::Master;

impl Master {
    /// Queues `text` for every worker that takes new connections; how many.
    /// A worker that has left [`MOST_TEXT_QUEUED`] bytes of lines untaken
    /// (stopped, or its loop wedged) gets none, said in the log once until
    /// it takes one.
    pub(super) fn broadcast(&mut self, text: &str) -> usize {
        let mut queued = 0;
        for slot in self.slots.iter_mut() {
            let Some(process) = slot.process.as_ref().filter(|p| !p.retiring) else { continue };
            if slot.lane.enqueue_text(text.as_bytes()) {
                queued += 1;
            } else if slot.lane.first_text_refusal(text.len()) {
                let (id, pid) = (process.worker, process.pid);
                crate::log!(warn { worker: id, worker_pid: pid }:
                    "worker {id} (pid {pid}) leaves {MOST_TEXT_QUEUED} bytes of lines untaken: no more are sent to it until it takes them");
            }
        }
        queued
    }

    /// Asks slot `index`'s worker to drain (its `Drain` goes down its lane
    /// after the connections queued there); the lines it has not taken are
    /// dropped, said in the log: a stop, reload or scale-down does not wait
    /// for a stopped or starved worker to read them (until 2026-12-08 up to
    /// 1 MiB of them went first, and a stop ran past 10 s on a loaded machine).
    pub(super) fn request_drain_of(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else { return };
        let (lines, bytes) = slot.lane.request_drain();
        let Some(process) = slot.process.as_ref().filter(|_| lines > 0) else { return };
        let (id, pid) = (process.worker, process.pid);
        crate::log!(warn { worker: id, worker_pid: pid }:
            "worker {id} (pid {pid}) drains with {} ({bytes} bytes) it has not taken: they are dropped",
            counted(lines, "line"));
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
            // A panic in it loses the line, not the master (in a program
            // built to unwind): said by the panic hook, as a handler's is.
            Some(hook) => {
                let _ = ringmaster_engine::panic_guard::guarded(Call::OnWorkerMessage, || (hook.0)(id, &text));
            }
            None => {
                let said = crate::log::Untrusted(&text);
                crate::log!(info { worker: id, worker_pid: pid }: "worker {id} (pid {pid}) says: {said}")
            }
        }
        true
    }
}
