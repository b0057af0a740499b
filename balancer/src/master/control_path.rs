//! The control socket's path made again when it was removed under a running
//! master (a cleaner of `/tmp` or `/run`, an operator's `rm`): without it
//! `ctl` could no longer reach the master until its next start. Looked at
//! on each tick; a path that names anything (this socket, another master's,
//! a file) is left as it is, and no path is made during an upgrade, whose
//! masters hand the socket between them.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use super::{Master, Op};
use crate::reactor::sys;

impl Master {
    /// Binds the control socket again at its path if the path is gone.
    pub(super) fn bind_control_path_if_gone(&mut self) -> io::Result<()> {
        if self.stopping.is_some() || !self.upgrades.is_quiet() {
            return Ok(());
        }
        let Some(control) = self.control.as_mut() else { return Ok(()) };
        if !control.socket.path_is_gone() {
            return Ok(());
        }
        let shown = control.socket.path().display().to_string();
        let replaced = match control.socket.bind_again() {
            Ok(replaced) => replaced,
            Err(e) => {
                if !control.rebind_failed {
                    crate::log!(warn: "{e}: the path was removed under this master; trying again each tick");
                    control.rebind_failed = true;
                }
                return Ok(());
            }
        };
        control.rebind_failed = false;
        crate::log!(warn: "--control {shown} was removed while this master ran: listening there again");
        // The armed accept is on the old listener: its end (`ECANCELED`)
        // arms the next on the new one.
        if control.accepting {
            self.reactor.cancel(Op::ControlAccept.token(0, 0))?;
        }
        for client in queued_clients(&replaced) {
            self.adopt_control_client(client)?;
        }
        self.reactor.close(OwnedFd::from(replaced))
    }
}

/// The clients that connected to `listener` before its path went and are
/// still in its queue: they are served, not reset.
fn queued_clients(listener: &UnixListener) -> Vec<OwnedFd> {
    if listener.set_nonblocking(true).is_err() {
        return Vec::new();
    }
    std::iter::from_fn(|| sys::accept(listener.as_raw_fd()).ok()).collect()
}
