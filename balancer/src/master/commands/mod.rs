//! What operators ask for, by signal or on the control socket: status,
//! reload, scale, upgrade (its steps are in `upgrade`), and the graceful
//! stop; and the control socket's I/O (its clients' lines, deadlines and
//! eviction are kept in `crate::control`).
//! Here: signals, commands and their replies; the stop is `stop.rs`, the
//! control socket's I/O `control_socket.rs`.

mod control_socket;
mod stop;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Master, MAX_WORKERS};
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
}
