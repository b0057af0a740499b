//! The control socket's I/O: its accept, each client's receives and sends,
//! deadlines, and the socket left to a new master at an upgrade.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use ringmaster_engine::{out_of_fds, out_of_resources};

use crate::control::clients::{Cancel, Ops};
use crate::control::ClientId;
use crate::master::{Master, Op};

impl Master {
    /// The old master's side of an upgrade that succeeded: new control
    /// clients go to the new master, and the path is left to it.
    pub(in crate::master) fn hand_over_control(&mut self) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.socket.leave_path();
        if control.accepting {
            self.reactor.cancel(Op::ControlAccept.token(0, 0))?;
        }
        Ok(())
    }

    /// The new master's side: the old one no longer uses the path.
    pub(in crate::master) fn claim_control_path(&mut self) {
        if let Some(control) = self.control.as_mut() {
            control.socket.claim_path();
        }
    }

    // --- the control socket's I/O ------------------------------------------------------------

    pub(in crate::master) fn arm_control_accept(&mut self) -> io::Result<()> {
        if !self.upgrades.lets_accept() {
            return Ok(());
        }
        let Some(control) = self.control.as_mut().filter(|c| !c.accepting) else { return Ok(()) };
        control.accepting = true;
        let listener = control.socket.listener().as_raw_fd();
        self.reactor.accept(listener, Op::ControlAccept.token(0, 0))
    }

    pub(in crate::master) fn on_control_accept(
        &mut self,
        result: i32,
        more: bool,
        accepted: Option<OwnedFd>,
    ) -> io::Result<()> {
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

    pub(in crate::master) fn on_control_recv(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ClientId { index: index as u32, epoch };
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        let lines = control.clients.received(id, result, Instant::now());
        self.run_commands(id, lines)?;
        self.pump_control(id)
    }

    pub(in crate::master) fn on_control_sent(&mut self, index: usize, epoch: u32, result: i32) -> io::Result<()> {
        let id = ClientId { index: index as u32, epoch };
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        control.clients.sent(id, result, Instant::now());
        // It took replies: what waited for that runs.
        let deferred = control.clients.take_deferred(id);
        self.run_commands(id, deferred)?;
        self.pump_control(id)
    }

    /// Serves a client the control socket accepted.
    pub(in crate::master) fn adopt_control_client(&mut self, connection: OwnedFd) -> io::Result<()> {
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
    pub(super) fn pump_control(&mut self, id: ClientId) -> io::Result<()> {
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
    pub(in crate::master) fn expire_control_clients(&mut self) -> io::Result<()> {
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        for (id, cancel) in control.clients.expire(Instant::now()) {
            self.cancel_client(id, cancel)?;
        }
        Ok(())
    }
}
