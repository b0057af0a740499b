//! What operators ask for, by signal or on the control socket: status,
//! reload, scale, upgrade (its steps are in `upgrade`), and the graceful
//! stop; and the control socket's I/O (its clients' lines, deadlines and
//! eviction are kept in `crate::control`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;
use ringmaster_engine::{out_of_fds, out_of_resources};

use super::{Master, Op, Stopping, MAX_WORKERS};
use crate::control::clients::{Cancel, Ops};
use crate::control::socket::SocketFile;
use crate::control::{parse_command, ClientId, Clients, Command, ControlSocket};
use crate::error::Result;
use crate::log::counted;
use crate::signals::{next_signal, signal_name, Received};

/// The control socket and its clients.
#[derive(Debug)]
pub(super) struct ControlState {
    pub(super) socket: ControlSocket,
    pub(super) clients: Clients,
    /// The multishot accept is armed.
    pub(super) accepting: bool,
    /// The path could not be bound again (see `control_path.rs`), and the
    /// log has said so: said once until it can.
    pub(super) rebind_failed: bool,
}

impl ControlState {
    pub(super) fn bind(path: &Path) -> Result<ControlState> {
        Ok(ControlState {
            socket: ControlSocket::bind(path)?,
            clients: Clients::new(),
            accepting: false,
            rebind_failed: false,
        })
    }

    /// The control socket an old master handed down (`upgrade`).
    pub(super) fn inherited(listener: OwnedFd, path: &Path, file: Option<SocketFile>) -> Result<ControlState> {
        Ok(ControlState {
            socket: ControlSocket::inherited(listener, path, file)?,
            clients: Clients::new(),
            accepting: false,
            rebind_failed: false,
        })
    }

    pub(super) fn listener(&self) -> BorrowedFd<'_> {
        self.socket.listener()
    }

    /// The socket file its path names while it is this socket's (`upgrade`
    /// hands it down).
    pub(super) fn file(&self) -> Option<SocketFile> {
        self.socket.file()
    }
}

impl Master {
    pub(super) fn on_signals(&mut self) -> io::Result<()> {
        while let Some(Received { signo, sender }) = next_signal(&self.signals)? {
            match Signal::try_from(signo) {
                Ok(Signal::SIGCHLD) => self.reap()?,
                Ok(Signal::SIGUSR1) => self.print_stats(),
                Ok(Signal::SIGUSR2) => {
                    // Refusals and failures are logged; nobody waits for a reply.
                    self.begin_upgrade("SIGUSR2", None)?;
                }
                Ok(Signal::SIGHUP) => match self.reload_refusal() {
                    // Nobody waits for a reply: the log says why nothing starts.
                    Some(why) => crate::log!("SIGHUP: {why}: not reloading"),
                    None => {
                        self.begin_reload()?;
                    }
                },
                Ok(Signal::SIGTTIN) if self.active_workers() >= MAX_WORKERS => {
                    // As `scale` over the control socket: past the cap the
                    // stats block would run out of slots for reloads.
                    crate::log!(warn: "SIGTTIN: at most {MAX_WORKERS} workers: not scaling")
                }
                Ok(Signal::SIGTTIN) => self.scale(self.active_workers() + 1)?,
                Ok(Signal::SIGTTOU) => self.scale(self.active_workers().saturating_sub(1).max(1))?,
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                    match self.upgrades.given_up_by_signal(sender).or_else(|| self.given_up_by_channel()) {
                        Some(old) => self.given_up_after_ready(old)?,
                        None => self.begin_stop(&signal_name(signo), signo)?,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Stops gracefully: with `--drain-delay`, every worker first serves on
    /// as a lame duck (its health path answers `503`, so load balancers stop
    /// sending) for that long; then no more accepting; lanes send what they
    /// hold, then `Drain`; workers finish and exit. A second request during
    /// the delay cuts it short; a second `SIGINT` after it kills the workers.
    pub(super) fn begin_stop(&mut self, why: &str, signo: i32) -> io::Result<()> {
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
    pub(super) fn end_drain_delay_when_due(&mut self) -> io::Result<()> {
        if self.lame_duck.is_some_and(|until| Instant::now() >= until) {
            self.lame_duck = None;
            let running = self.slots.iter().filter(|s| s.process.is_some()).count();
            crate::log!("drain delay over: stopping {}", counted(running, "worker"));
            self.stop_now()?;
        }
        Ok(())
    }

    pub(super) fn stop_now(&mut self) -> io::Result<()> {
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
    pub(super) fn stop_begun(&self) -> bool {
        self.stopping.is_some() || self.lame_duck.is_some()
    }

    /// What a reload, scale or upgrade asked for once a stop has begun is
    /// told. Until 2026-12-07 just `stopping`, which said neither what
    /// stops nor whether to ask again.
    pub(super) fn stop_refusal(&self) -> Option<String> {
        self.stop_begun().then(|| {
            "this master is stopping (a stop command or signal came; its --drain-delay too) and will exit".to_string()
        })
    }

    /// The graceful stop itself (for `stop`, a signal, or a master that
    /// handed over): no more accepting; every worker drains and exits (and
    /// is a lame duck from now on, before its `Drain` arrives).
    pub(super) fn drain_everything(&mut self) -> io::Result<()> {
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
            let slot = &mut self.slots[index];
            if let Some(process) = slot.process.as_mut() {
                process.retiring = true;
            }
            slot.lane.request_drain();
        }
        self.refresh_routes();
        self.refuse_held();
        Ok(())
    }

    /// Runs one control command from client `id`; the reply line (without
    /// newline), or `None` when it comes later ([`Master::answer_later`]).
    fn answer(&mut self, line: &[u8], id: ClientId) -> io::Result<Option<String>> {
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(reply) => return Ok(Some(reply)),
        };
        // Once the new master of an upgrade serves, this one only drains:
        // nothing it would start could serve.
        if let Some(successor) = self.upgrades.handed_over_to() {
            if matches!(command, Command::Reload | Command::Scale(_) | Command::Upgrade) {
                let me = std::process::id();
                return Ok(Some(format!(
                    "error: this master (pid {me}) has handed over to pid {successor} (upgrade) and drains: send that to its control socket"
                )));
            }
        }
        Ok(Some(match command {
            Command::Status => self.stats_line(),
            Command::Reload => match self.reload_refusal() {
                Some(why) => format!("error: {why}"),
                None => format!("ok reloading {}", counted(self.begin_reload()?, "worker")),
            },
            Command::Scale(n) if n > MAX_WORKERS => format!("error: at most {MAX_WORKERS} workers"),
            Command::Scale(n) => match self.stop_refusal().or_else(|| self.refusal_while_upgrading()) {
                Some(why) => format!("error: {why}"),
                None => {
                    self.scale(n)?;
                    format!("ok scaling to {}", counted(n, "worker"))
                }
            },
            Command::Stop => {
                let delay = self.config.drain_delay;
                let delayed = self.stopping.is_none() && self.lame_duck.is_none() && !delay.is_zero();
                self.begin_stop("stop command", libc::SIGTERM)?;
                if delayed {
                    format!("ok stopping after a drain delay of {:.1} s", delay.as_secs_f64())
                } else {
                    "ok stopping".to_string()
                }
            }
            Command::Upgrade => return self.begin_upgrade("upgrade command", Some(id)),
            Command::Send(text) => format!("ok sent to {}", counted(self.broadcast(&text), "worker")),
        }))
    }

    /// The reply client `id` was owed; those to its later commands follow.
    pub(super) fn answer_later(&mut self, id: ClientId, reply: &str) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.clients.release(id, reply, Instant::now());
        let deferred = control.clients.take_deferred(id);
        self.run_commands(id, deferred)?;
        self.pump_control(id)
    }

    /// Runs a client's command lines in order, each reply queued for it.
    /// Those after one whose outcome comes later (`upgrade`) wait for it
    /// ([`Master::answer_later`]); those of a client that has not taken its
    /// replies wait for it to ([`Master::on_control_sent`]).
    fn run_commands(&mut self, id: ClientId, lines: Vec<Vec<u8>>) -> io::Result<()> {
        for line in lines {
            let Some(control) = self.control.as_mut() else { return Ok(()) };
            if control.clients.must_wait(id) {
                control.clients.defer(id, line);
                continue;
            }
            let reply = self.answer(&line, id)?;
            if let Some(control) = self.control.as_mut() {
                match reply {
                    Some(reply) => control.clients.reply(id, &reply, Instant::now()),
                    None => control.clients.hold(id),
                }
            }
        }
        Ok(())
    }

    /// The old master's side of an upgrade that succeeded: new control
    /// clients go to the new master, and the path is left to it.
    pub(super) fn hand_over_control(&mut self) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.socket.leave_path();
        if control.accepting {
            self.reactor.cancel(Op::ControlAccept.token(0, 0))?;
        }
        Ok(())
    }

    /// The new master's side: the old one no longer uses the path.
    pub(super) fn claim_control_path(&mut self) {
        if let Some(control) = self.control.as_mut() {
            control.socket.claim_path();
        }
    }

    // --- the control socket's I/O ------------------------------------------------------------

    pub(super) fn arm_control_accept(&mut self) -> io::Result<()> {
        if !self.upgrades.lets_accept() {
            return Ok(());
        }
        let Some(control) = self.control.as_mut().filter(|c| !c.accepting) else { return Ok(()) };
        control.accepting = true;
        let listener = control.socket.listener().as_raw_fd();
        self.reactor.accept(listener, Op::ControlAccept.token(0, 0))
    }

    pub(super) fn on_control_accept(&mut self, result: i32, more: bool, accepted: Option<OwnedFd>) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        if !more {
            control.accepting = false;
        }
        let listener = control.socket.listener().as_raw_fd();
        // At the open-file limit: a client still comes in, on a spare.
        let accepted = accepted.or_else(|| out_of_fds(-result).then(|| self.accept_on_a_spare(listener)).flatten());
        if let Some(connection) = accepted {
            self.adopt_control_client(connection)?;
        }
        // Out of fds or memory: the tick re-arms rather than spinning now.
        if !more && self.stopping.is_none() && !out_of_resources(-result) {
            self.arm_control_accept()?;
        }
        Ok(())
    }

    pub(super) fn on_control_recv(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ClientId { index: index as u32, epoch };
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let lines = control.clients.received(id, result, Instant::now());
        self.run_commands(id, lines)?;
        self.pump_control(id)
    }

    pub(super) fn on_control_sent(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ClientId { index: index as u32, epoch };
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.clients.sent(id, result, Instant::now());
        // It took replies: what waited for that runs.
        let deferred = control.clients.take_deferred(id);
        self.run_commands(id, deferred)?;
        self.pump_control(id)
    }

    /// Serves a client the control socket accepted.
    pub(super) fn adopt_control_client(&mut self, connection: OwnedFd) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let adopted = control.clients.adopt(connection, Instant::now());
        if let Some((evicted, cancel)) = adopted.evicted {
            self.cancel_client(evicted, cancel)?;
        }
        match adopted.id {
            Some(id) => self.pump_control(id),
            None => Ok(()),
        }
    }

    /// Starts a client's next send and receive, and closes it once it is done.
    fn pump_control(&mut self, id: ClientId) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let (Ops { send, recv }, done) = control.clients.next_ops(id);
        let (index, epoch) = (id.index as usize, id.epoch);
        if let Some(reply) = send {
            self.reactor.start(reply, Op::ControlSend.token(index, epoch))?;
        }
        if let Some(line) = recv {
            self.reactor.start(line, Op::ControlRecv.token(index, epoch))?;
        }
        if let Some(fd) = done {
            self.reactor.close(fd)?;
        }
        Ok(())
    }

    fn cancel_client(&mut self, id: ClientId, cancel: Cancel) -> io::Result<()> {
        let (index, epoch) = (id.index as usize, id.epoch);
        if cancel.recv {
            self.reactor.cancel(Op::ControlRecv.token(index, epoch))?;
        }
        if cancel.send {
            self.reactor.cancel(Op::ControlSend.token(index, epoch))?;
        }
        // Nothing in flight: it is freed now.
        self.pump_control(id)
    }

    /// Closes control clients past their deadline (see `crate::control::clients`).
    pub(super) fn expire_control_clients(&mut self) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        for (id, cancel) in control.clients.expire(Instant::now()) {
            self.cancel_client(id, cancel)?;
        }
        Ok(())
    }
}
