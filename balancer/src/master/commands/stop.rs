//! The graceful stop: a drain delay first (lame ducks), then every worker
//! drained; what a reload, scale or upgrade asked for during it refused.

use std::io;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::log::counted;
use crate::master::{Master, Op, Stopping};

impl Master {
    /// Stops gracefully: with `--drain-delay`, every worker first serves on
    /// as a lame duck (its health path answers `503`, so load balancers stop
    /// sending) for that long; then no more accepting; lanes send what they
    /// hold, then `Drain`; workers finish and exit. A second request during
    /// the delay cuts it short; a second `SIGINT` after it kills the workers.
    pub(in crate::master) fn begin_stop(&mut self, why: &str, signo: i32) -> io::Result<()> {
        if let Some(stopping) = self.stopping.as_mut() {
            if !stopping.asked {
                // The first stop asked of a master that handed over: it drains already.
                stopping.asked = true;
                crate::log!("{why} received: this master has handed over and its workers drain already");
            } else if signo == libc::SIGINT {
                crate::log!(warn: "second SIGINT: killing workers now");
                self.kill_all(Signal::SIGKILL);
            }
            return Ok(());
        }
        let running = self.slots.iter().filter(|s| s.process.is_some()).count();
        if self.lame_duck.take().is_some() {
            crate::log!("{why} received during the drain delay: stopping {} now", counted(running, "worker"));
            return self.stop_now();
        }
        let delay = self.config.drain_delay;
        // A new master not yet ready has served nothing and must not become
        // ready now (the old master would hand over to a master that is
        // stopping): no drain delay, it gives up the upgrade at once.
        if !delay.is_zero() && self.upgrades.is_taking_over() {
            crate::log!("{why} received before every worker was ready: stopping {} now", counted(running, "worker"));
            return self.stop_now();
        }
        if !delay.is_zero() {
            self.lame_duck = Some(Instant::now() + delay);
            // Once the stop is under way, so that its STATUS= says so.
            self.notify_stopping();
            // After the stop has begun: the log must not say this master serves on.
            self.abandon_upgrade()?;
            self.reload.cancel();
            for slot in 0..self.slots.len() {
                self.mark_lame_duck(slot);
            }
            // Every worker is a lame duck now: they all go on taking connections.
            self.refresh_routes();
            crate::log!(
                "{why} received: lame duck for {:.1} s (--drain-delay): health checks answer 503 while {} \
                 serve on; then they drain",
                delay.as_secs_f64(),
                counted(running, "worker")
            );
            return Ok(());
        }
        crate::log!("{why} received: stopping {}", counted(running, "worker"));
        self.stop_now()?;
        self.notify_stopping();
        Ok(())
    }

    /// Each tick: once the drain delay is over, the stop proper.
    pub(in crate::master) fn end_drain_delay_when_due(&mut self) -> io::Result<()> {
        if self.lame_duck.is_some_and(|until| Instant::now() >= until) {
            self.lame_duck = None;
            let running = self.slots.iter().filter(|s| s.process.is_some()).count();
            crate::log!("drain delay over: stopping {}", counted(running, "worker"));
            self.stop_now()?;
        }
        Ok(())
    }

    pub(in crate::master) fn stop_now(&mut self) -> io::Result<()> {
        // Before any `Drain` is asked: it goes down each lane after what is queued there.
        self.hand_off_before_drain();
        self.drain_everything()?;
        if let Some(stopping) = self.stopping.as_mut() {
            stopping.asked = true;
        }
        self.abandon_upgrade()?;
        // Not while another master shares the listeners (an old one waiting
        // for this one to be ready, or a new one taking over).
        if let Some(stopping) = self.stopping.as_mut() {
            stopping.stop_listening = self.upgrades.lets_accept();
        }
        Ok(())
    }

    /// A stop has begun (its drain delay included): no reload, scale or upgrade now.
    pub(in crate::master) fn stop_begun(&self) -> bool {
        self.stopping.is_some() || self.lame_duck.is_some()
    }

    /// What a reload, scale or upgrade asked for once a stop has begun is
    /// told. Until 2026-12-07 just `stopping`, which said neither what
    /// stops nor whether to ask again.
    pub(in crate::master) fn stop_refusal(&self) -> Option<String> {
        self.stop_begun().then(|| {
            "this master is stopping (a stop command or signal came; its --drain-delay too) and will exit".to_string()
        })
    }

    /// The graceful stop itself (for `stop`, a signal, or a master that
    /// handed over): no more accepting; every worker drains and exits (and
    /// is a lame duck from now on, before its `Drain` arrives).
    pub(in crate::master) fn drain_everything(&mut self) -> io::Result<()> {
        let began = Instant::now();
        let deadline = began + self.config.shutdown_timeout;
        // A drain delay under way ends here (a master that handed over drains at once).
        self.lame_duck = None;
        self.stopping = Some(Stopping {
            began,
            deadline,
            stragglers_killed: false,
            exit_grace: None,
            stop_listening: false,
            stopped_listening: false,
            taken_by_worker: Vec::new(),
            answering: None,
            asked: false,
        });
        self.reactor.cancel(Op::Accept.token(0, 0))?;
        self.reload.cancel();
        for worker in &mut self.workers {
            worker.restart_at = None;
        }
        for index in 0..self.slots.len() {
            self.mark_lame_duck(index);
            if let Some(process) = self.slots[index].process.as_mut() {
                process.retiring = true;
            }
            self.request_drain_of(index);
        }
        self.refresh_routes();
        self.refuse_held();
        Ok(())
    }
}
