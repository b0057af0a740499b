//! The steering program's maps and its place on the listeners' group:
//! which listeners it steers to, and when it goes on (see
//! [`Reuseport::enter_maps`]).

use std::os::fd::AsFd;
use std::time::Instant;

use super::{Predecessor, Reuseport, STEER_EVERY};
use crate::log::counted;

impl Reuseport {
    /// Takes worker `worker`'s listener out of the steering program's maps.
    pub(super) fn leave_maps(&mut self, worker: usize) {
        if let Some(steer) = self.steer.as_mut() {
            let listeners = &self.listeners;
            if let Err(e) = steer.steering.remove(worker, |w| listeners.get(&w).map(|fd| fd.as_fd())) {
                crate::log!("cannot take worker {worker}'s listener out of the steering map: {e}");
            }
            steer.last.remove(&worker);
        }
    }

    /// Puts every listener not in the maps yet into them, and attaches the
    /// program (once, to the first listener: it stays with the group) when
    /// it may steer. One handed down by an old master may still be in that
    /// master's maps (`EBUSY`): it is tried again at the next refresh, and
    /// while this master takes over the old master's program, which steers
    /// to it by load, stays on the group (a group runs one program; until
    /// 2026-12-07 this one's went on as this master started, its maps
    /// empty, and placed every connection by the kernel's hash until the
    /// hand-over, up to `--shutdown-timeout`). Once this master took over,
    /// its program goes on when the old master has let go of the listeners
    /// (as it hands over), or [`OLD_MASTER_LETS_GO`](super::OLD_MASTER_LETS_GO) later whatever its maps
    /// hold: an old master gone without handing over (killed) leaves its
    /// program on the group, holding the listeners, until one replaces it.
    pub(super) fn enter_maps(&mut self) {
        let Some(steer) = self.steer.as_mut() else { return };
        let mut held_elsewhere = 0;
        for (&worker, fd) in &self.listeners {
            if steer.steering.keys().contains(&worker) {
                continue;
            }
            match steer.steering.insert(worker, fd.as_fd()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => held_elsewhere += 1,
                Err(e) if !steer.insert_failed_logged => {
                    steer.insert_failed_logged = true;
                    crate::log!("cannot put worker {worker}'s listener in the steering map: {e}");
                }
                Err(_) => {}
            }
        }
        let may_attach = match self.predecessor {
            Predecessor::None => true,
            Predecessor::Serving => held_elsewhere == 0,
            Predecessor::HandingOver { replace_at } => held_elsewhere == 0 || Instant::now() >= replace_at,
        };
        if steer.attached || !may_attach {
            return;
        }
        let Some(first) = self.listeners.values().next() else { return };
        match steer.steering.attach(first.as_fd()) {
            Ok(()) => {
                steer.attached = true;
                if std::mem::take(&mut steer.attach_failed_logged) {
                    crate::log!("reuseport: the steering program is attached: it steers by load from now on");
                }
            }
            // Until 2026-12-07 said at every refresh: 200 lines a second.
            Err(e) if !steer.attach_failed_logged => {
                steer.attach_failed_logged = true;
                crate::log!(
                    "cannot attach the steering program: {e}; the kernel's hash decides meanwhile (tried again \
                     every {STEER_EVERY:?}, said again once it is on)"
                );
                return;
            }
            Err(_) => return,
        }
        if self.predecessor == Predecessor::None {
            return;
        }
        self.predecessor = Predecessor::None;
        if held_elsewhere == 0 {
            crate::log!("reuseport: this master's steering program steers from now on");
        } else {
            crate::log!(warn:
                "reuseport: this master's steering program steers from now on, in place of the old master's, whose \
                 maps still hold {} (it went without handing them over); those are steered to once the kernel \
                 frees its maps",
                counted(held_elsewhere, "listener")
            );
        }
    }
}
