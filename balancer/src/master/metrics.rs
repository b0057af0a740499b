//! The metrics endpoint's I/O (`--metrics ADDR`): a multishot accept on its
//! listener, one receive and one send per client through the master's
//! reactor, deadlines checked each tick; the page is rendered from what the
//! master knows when a request is complete (see `crate::metrics`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Instant, UNIX_EPOCH};

use super::{Master, Op};
use crate::control::clients::Cancel;
use crate::metrics::procfs::{open_fds, proc_stat};
use crate::metrics::{render, Asked, ScrapeId, Scrapes, Snapshot};

/// The metrics listener and its clients.
#[derive(Debug)]
pub(super) struct MetricsState {
    pub(super) listener: OwnedFd,
    scrapes: Scrapes,
    /// The multishot accept is armed.
    accepting: bool,
}

impl MetricsState {
    pub(super) fn new(listener: OwnedFd) -> MetricsState {
        MetricsState { listener, scrapes: Scrapes::new(), accepting: false }
    }
}

impl Master {
    /// The page, as of now.
    pub(super) fn metrics_page(&mut self) -> String {
        self.with_a_number_for_proc(Master::make_metrics_page)
    }

    /// The page; `lent`: a spare of the reserve is let go meanwhile, for
    /// the reads of `/proc`.
    fn make_metrics_page(&self, lent: bool) -> String {
        let rows = self.worker_rows();
        let since_epoch = self.started_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let snapshot = Snapshot {
            program: self.config.exec.names.program(),
            mode: self.config.mode.name(),
            steer: self.dispatch.balance.steering(),
            backend: self.backend.name(),
            version: env!("CARGO_PKG_VERSION"),
            workers_wanted: self.active_workers(),
            max_conns: self.config.engine.max_conns as u64,
            stopping: self.stopping.is_some() || self.lame_duck.is_some(),
            lame_duck: self.lame_duck.is_some(),
            counts: crate::metrics::MasterCounts { refused: self.dispatch.refused, ..self.counts },
            held: self.dispatch.held_now() as u64,
            queued_fds: self.slots.iter().map(|s| s.lane.held_fds() as u64).sum(),
            process: proc_stat(std::process::id()),
            start_time: since_epoch.as_secs_f64(),
            // The spare let go for this read is the master's all the same.
            open_fds: open_fds().ok().map(|open| open + u64::from(lent)),
            max_fds: crate::rlimit::fd_limit().ok(),
            retired: self.retired_counts,
            workers: &rows,
        };
        render(&snapshot)
    }

    pub(super) fn arm_metrics_accept(&mut self) -> io::Result<()> {
        if !self.upgrades.lets_accept() {
            return Ok(());
        }
        let Some(metrics) = self.metrics.as_mut().filter(|m| !m.accepting) else { return Ok(()) };
        metrics.accepting = true;
        let listener = metrics.listener.as_raw_fd();
        self.reactor.accept(listener, Op::MetricsAccept.token(0, 0))
    }

    /// The old master's side of an upgrade: the new master serves the page.
    pub(super) fn hand_over_metrics(&mut self) -> io::Result<()> {
        if self.metrics.as_ref().is_some_and(|m| m.accepting) {
            self.reactor.cancel(Op::MetricsAccept.token(0, 0))?;
        }
        Ok(())
    }

    pub(super) fn on_metrics_accept(&mut self, result: i32, more: bool, accepted: Option<OwnedFd>) -> io::Result<()> {
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        if !more {
            metrics.accepting = false;
        }
        let listener = metrics.listener.as_raw_fd();
        // At the open-file limit: a scrape still comes in, on a spare.
        let out_of_fds = ringmaster_engine::out_of_fds(-result);
        let accepted = accepted.or_else(|| out_of_fds.then(|| self.accept_on_a_spare(listener)).flatten());
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        if let Some(connection) = accepted {
            let adopted = metrics.scrapes.adopt(connection, Instant::now());
            if let Some((evicted, cancel)) = adopted.evicted {
                self.cancel_scrape(evicted, cancel)?;
            }
            if let Some(id) = adopted.id {
                self.pump_scrape(id)?;
            }
        }
        // Out of fds or memory: the tick re-arms rather than spinning now.
        if !more && !ringmaster_engine::out_of_resources(-result) {
            self.arm_metrics_accept()?;
        }
        Ok(())
    }

    pub(super) fn on_metrics_recv(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ScrapeId { index: index as u32, epoch };
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        if let Some(Asked::Page { head }) = metrics.scrapes.received(id, result, Instant::now()) {
            let page = self.metrics_page();
            if let Some(metrics) = self.metrics.as_mut() {
                metrics.scrapes.answer(id, &page, head, Instant::now());
            }
        }
        self.pump_scrape(id)
    }

    pub(super) fn on_metrics_sent(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ScrapeId { index: index as u32, epoch };
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        metrics.scrapes.sent(id, result, Instant::now());
        self.pump_scrape(id)
    }

    /// Starts a client's next send and receive, and closes it once it is done.
    fn pump_scrape(&mut self, id: ScrapeId) -> io::Result<()> {
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        let (ops, done) = metrics.scrapes.next_ops(id);
        let (index, epoch) = (id.index as usize, id.epoch);
        if let Some(answer) = ops.send {
            self.reactor.start(answer, Op::MetricsSend.token(index, epoch))?;
        }
        if let Some(request) = ops.recv {
            self.reactor.start(request, Op::MetricsRecv.token(index, epoch))?;
        }
        if let Some(fd) = done {
            self.reactor.close(fd)?;
        }
        Ok(())
    }

    fn cancel_scrape(&mut self, id: ScrapeId, cancel: Cancel) -> io::Result<()> {
        let (index, epoch) = (id.index as usize, id.epoch);
        if cancel.recv {
            self.reactor.cancel(Op::MetricsRecv.token(index, epoch))?;
        }
        if cancel.send {
            self.reactor.cancel(Op::MetricsSend.token(index, epoch))?;
        }
        self.pump_scrape(id)
    }

    /// Closes metrics clients past their deadline (see `crate::metrics::scrapes`).
    pub(super) fn expire_scrapes(&mut self) -> io::Result<()> {
        let Some(metrics) = self.metrics.as_mut() else { return Ok(()) };
        for (id, cancel) in metrics.scrapes.expire(Instant::now()) {
            self.cancel_scrape(id, cancel)?;
        }
        Ok(())
    }
}
