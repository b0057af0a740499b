//! The lanes' I/O: each loop turn reads the acknowledgements workers
//! published in their shared slots, which settle their batches (the
//! master's copies close, what the worker declined goes elsewhere), sends
//! what every lane has queued (one batch in a worker's socket at a time),
//! and, before the master waits, asks the workers whose acks it would wait
//! for to wake it; a multishot receive stays armed on each channel for
//! those wake-ups, workers' lines of text and the channel's end. A dead
//! worker's lane is settled once no op is in flight; and a worker whose
//! batch waits for its acknowledgement too long is logged as lagging.

use std::io;
use std::time::{Duration, Instant};

use super::fd_limit_log::FdLimitLine;
use super::{Master, Op};
use crate::handoff::Sent;
use crate::modes::Accepting;

/// How long a worker that declined connections (full, or out of fds) is
/// skipped before it is offered new ones.
const DECLINED_PAUSE: Duration = Duration::from_millis(100);
/// How long a worker lags before the master logs it.
const LAG_LOGGED_AFTER: Duration = Duration::from_millis(100);

impl Master {
    /// Once per loop turn: re-routes what waits for workers that lag, routes
    /// what is held if a worker takes again, sends what every lane has queued
    /// (one batch in a worker's socket at a time) and keeps a multishot
    /// receive armed for each worker's acknowledgements.
    pub(super) fn pump_lanes(&mut self) -> io::Result<()> {
        let now = Instant::now();
        self.reroute_lagging(now);
        self.route_held();
        for index in 0..self.slots.len() {
            let lane = &mut self.slots[index].lane;
            let epoch = lane.epoch;
            if let Some(message) = lane.next_send(now) {
                self.reactor.start(message, Op::LaneSend.token(index, epoch))?;
            }
            if let Some(channel) = self.slots[index].lane.next_recv() {
                self.reactor.recv_multi(channel, Op::LaneRecv.token(index, epoch))?;
            }
        }
        Ok(())
    }

    pub(super) fn on_lane_sent(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        match slot.lane.on_sent(result, Instant::now(), &mut self.dispatch.scratch) {
            // Into a worker that has since died, maybe: settle its lane if so.
            Sent::Delivered => self.settle_gone_lane(index),
            // The kernel could not take it now: the lane sends it again after a
            // pause (the tick brings a turn), the worker keeps what it has.
            Sent::Retry => {
                self.counts.hand_off_retries += 1;
                self.log_hand_off_refused(index, result);
                Ok(())
            }
            Sent::Finished => {
                self.stop_receiving(index)?;
                self.close_scratch()
            }
            Sent::Failed => {
                self.refresh_routes();
                self.reroute_scratch();
                self.stop_receiving(index)?;
                self.settle_gone_lane(index)
            }
        }
    }

    /// Says (at most every 10 s) that the kernel refused a hand-off to a
    /// live worker for now, and what to do if it lasts.
    fn log_hand_off_refused(&mut self, index: usize, result: i32) {
        let Some(process) = self.slots.get(index).and_then(|slot| slot.process.as_ref()) else { return };
        let (id, pid) = (process.worker, process.pid);
        // strerror's text for ETOOMANYREFS ("cannot splice") misleads: name it.
        let (error, why) = match -result {
            libc::ETOOMANYREFS => (
                "ETOOMANYREFS".to_string(),
                "this user has more descriptors in flight in unix sockets than its open-file limit (raise RLIMIT_NOFILE)",
            ),
            errno => (io::Error::from_raw_os_error(errno).to_string(), "the kernel is short of memory for the message"),
        };
        self.log_fd_limit(
            FdLimitLine::HandOff,
            format_args!(
                "cannot hand connections to worker {id} (pid {pid}) for now ({error}): {why}; they wait in the master \
                 and go again {} ms on, at its next turn (within {} ms)",
                crate::handoff::SEND_RETRY_PAUSE.as_millis(),
                super::TICK.as_millis()
            ),
        );
    }

    /// Once a dead worker's lane has no op in flight: close what it acknowledged,
    /// hand everything else to the live workers.
    pub(super) fn settle_gone_lane(&mut self, index: usize) -> io::Result<()> {
        if !self.slots[index].lane.can_finish() {
            return Ok(());
        }
        let Some(acks) = self.stats.slot(index).map(|c| &c.acks) else { return Ok(()) };
        let mut acknowledged = Vec::new();
        self.slots[index].lane.finish_gone(acks, &mut acknowledged, &mut self.dispatch.scratch);
        self.refresh_routes();
        self.reroute_scratch();
        self.dispatch.scratch.append(&mut acknowledged);
        self.close_scratch()
    }

    /// A message on a worker's channel: a line of its text, a wake-up for
    /// acks (read with the others: [`Master::settle_acks`]), or the
    /// channel's end.
    pub(super) fn on_lane_received(&mut self, index: usize, result: i32, more: bool, message: &[u8]) -> io::Result<()> {
        if result > 0 && !self.take_worker_text(index, message) {
            self.counts.ack_wakes += 1;
        }
        let Some(slot) = self.slots.get_mut(index) else { return Ok(()) };
        if !slot.lane.on_received(result, more) {
            self.stop_receiving(index)?;
        }
        self.settle_gone_lane(index)
    }

    /// Settles what every worker has acknowledged in its shared slot: ours
    /// of the connections it adopted can close; those it did not take go to
    /// another worker, and it gets no new ones for a while. Once per loop
    /// turn, before anything is routed.
    pub(super) fn settle_acks(&mut self) -> io::Result<()> {
        for index in 0..self.slots.len() {
            self.settle_acks_of(index)?;
        }
        Ok(())
    }

    fn settle_acks_of(&mut self, index: usize) -> io::Result<()> {
        let Some(acks) = self.stats.slot(index).map(|c| &c.acks) else { return Ok(()) };
        let slot = &mut self.slots[index];
        let settled = slot.lane.settle_published(acks, &mut self.dispatch.scratch, &mut self.dispatch.declined);
        if settled == 0 {
            return Ok(());
        }
        self.counts.acks += settled as u64;
        if !self.dispatch.declined.is_empty() {
            slot.declined_until = Some(Instant::now() + DECLINED_PAUSE);
            let mut declined = std::mem::take(&mut self.dispatch.declined);
            self.counts.rerouted += declined.len() as u64;
            for fd in declined.drain(..) {
                self.route(fd);
            }
            self.dispatch.declined = declined;
        }
        self.close_scratch()?;
        if !self.slots[index].lane.is_open() {
            self.stop_receiving(index)?;
        }
        Ok(())
    }

    /// Before the master waits: asks each worker whose ack it would wait
    /// for (connections queued behind its batch, a drain, held connections,
    /// a stop) to wake it. True when an ack came meanwhile: it is settled
    /// now, and the lanes have more to send.
    pub(super) fn ask_for_wakes(&mut self) -> io::Result<bool> {
        let others_wait = self.dispatch.held_now() > 0 || self.stopping.is_some();
        let mut came = false;
        for index in 0..self.slots.len() {
            if !self.slots[index].lane.awaits_ack(others_wait) {
                continue;
            }
            let Some(acks) = self.stats.slot(index).map(|c| &c.acks) else { continue };
            if self.slots[index].lane.ask_wake(acks) {
                self.settle_acks_of(index)?;
                came = true;
            }
        }
        Ok(came)
    }

    /// Cancels a lane's armed receive once its channel is closed, so the
    /// socket really closes and the worker sees the end of its channel.
    pub(super) fn stop_receiving(&mut self, index: usize) -> io::Result<()> {
        let lane = &self.slots[index].lane;
        if lane.is_receiving() {
            self.reactor.cancel(Op::LaneRecv.token(index, lane.epoch))?;
        }
        Ok(())
    }

    /// Logs (master-accepting modes) when a worker has not kept up for
    /// [`LAG_LOGGED_AFTER`] — its batch unacknowledged past the grace, or its
    /// heartbeat stale, at two ticks that far apart — and when it catches up
    /// again. Routing does not wait for this: it looks at the facts for every
    /// connection; the log leaves out a busy machine's short hiccups.
    pub(super) fn watch_lagging(&mut self) {
        if self.dispatch.balance.accepting() != Accepting::Master {
            return;
        }
        let now = Instant::now();
        for i in 0..self.dispatch.routes.len() {
            let slot = self.dispatch.routes[i];
            let facts = self.judge(now).facts(slot);
            let Some(process) = self.slots[slot].process.as_ref() else { continue };
            let (id, pid) = (process.worker, process.pid);
            let lagging = match (facts.stalled(), self.slots[slot].lagging) {
                (true, None) => Some((now, false)),
                (true, Some((since, false))) if now.duration_since(since) >= LAG_LOGGED_AFTER => {
                    // Where new connections go meanwhile: with no other worker
                    // taking any (`--workers 1`, or all of them stalled or
                    // full), nowhere yet.
                    let judge = self.judge(now);
                    let others_take =
                        self.dispatch.routes.iter().any(|&other| other != slot && judge.facts(other).takes());
                    let meanwhile = if others_take {
                        "new connections go to the others"
                    } else {
                        "no other worker takes connections now: new ones wait in the master (up to --backlog), \
                         or get 503 once every worker is full"
                    };
                    // A stale heartbeat alone stalls it too: then no batch waits.
                    let batch = if facts.ack_wait.is_zero() {
                        "no batch waiting for its ack".to_string()
                    } else {
                        format!("a batch unacknowledged for {} ms", facts.ack_wait.as_millis())
                    };
                    crate::log!(warn { worker: id, worker_pid: pid }:
                        "worker {id} (pid {pid}) is not keeping up ({batch}, heartbeat {} ms old): {meanwhile}",
                        facts.heartbeat_age.as_millis()
                    );
                    Some((since, true))
                }
                (false, Some((since, logged))) => {
                    if logged {
                        let lagged = now.duration_since(since).as_millis();
                        crate::log!(info { worker: id, worker_pid: pid }:
                            "worker {id} (pid {pid}) caught up after about {lagged} ms"
                        );
                    }
                    None
                }
                (_, unchanged) => unchanged,
            };
            self.slots[slot].lagging = lagging;
        }
    }
}
