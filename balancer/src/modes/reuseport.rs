//! `reuseport`: every worker accepts on a `SO_REUSEPORT` listener of its own,
//! and the kernel spreads connections over the group by a hash of each
//! connection's addresses and ports: no master in the path, no shared queue.
//! The master creates and keeps one listener per worker slot (worker id), and
//! hands it to whichever process runs that slot: a restart or a reload loses
//! nothing queued on it, since the master's copy keeps it open. Retiring a
//! slot (scale-down) lets the master's copy go; the retiring worker, the last
//! holder, accepts what is queued before it closes, and what arrives in
//! between moves to the other listeners when `net.ipv4.tcp_migrate_req` is 1
//! ([`enable_migration`]; the kernel counts `TCPMigrateReqSuccess` and
//! `TCPMigrateReqFailure` in /proc/net/netstat).
//!
//! The hash is blind to load: a stalled or full worker's share waits in its
//! queue. The slot -> listener map is kept here, in one place, for steering
//! by load (an eBPF `SK_REUSEPORT` program over a socket array) to build on.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Accepting, Balance, ListenAt, RouteFacts, WorkerListener};
use crate::config::Mode;
use crate::listener::listen_reuseport;

/// The sysctl that makes a closing listener's queue move to its group.
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// The per-slot listeners, by worker id.
#[derive(Debug)]
pub struct Reuseport {
    at: ListenAt,
    listeners: BTreeMap<usize, OwnedFd>,
}

impl Reuseport {
    /// The listeners an old master handed down (`upgrade`), by worker id;
    /// any other is made when its slot's first process starts.
    pub fn new(at: ListenAt, handed: Vec<(usize, OwnedFd)>) -> Reuseport {
        Reuseport { at, listeners: handed.into_iter().collect() }
    }
}

impl Balance for Reuseport {
    fn mode(&self) -> Mode {
        Mode::Reuseport
    }

    fn accepting(&self) -> Accepting {
        Accepting::OwnListeners
    }

    fn worker_listener(&mut self, worker: usize) -> io::Result<WorkerListener<'_>> {
        if !self.listeners.contains_key(&worker) {
            let listener = listen_reuseport(self.at.local, self.at.backlog)?;
            self.listeners.insert(worker, listener);
        }
        let listener = self.listeners.get(&worker).ok_or_else(|| io::Error::other("listener vanished"))?;
        Ok(WorkerListener::Own(listener.as_fd()))
    }

    fn retire_worker(&mut self, worker: usize) {
        self.listeners.remove(&worker);
    }

    fn own_listeners(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.listeners.iter().map(|(&worker, fd)| (worker, fd.as_fd())).collect()
    }

    /// The master never accepts: each worker takes its own queue.
    fn master_accepts(&self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> bool {
        false
    }

    fn pick(&mut self, _routes: &[usize], _facts: &dyn Fn(usize) -> RouteFacts) -> Option<usize> {
        None
    }
}

/// Sets `net.ipv4.tcp_migrate_req` to 1 for this network namespace if it is
/// not already, so a retiring worker's listener hands what is left in its
/// queue to the group when it closes; says what it did, or why it could not.
pub fn enable_migration() {
    match fs::read_to_string(MIGRATE_REQ).map(|v| v.trim() == "1") {
        Ok(true) => {}
        Ok(false) => match fs::write(MIGRATE_REQ, "1") {
            Ok(()) => crate::log!("set net.ipv4.tcp_migrate_req=1: a retired worker's queue moves to the others"),
            Err(e) => crate::log!(warn:
                "cannot set net.ipv4.tcp_migrate_req=1 ({e}): connections reaching a retiring worker's \
                 listener after its last accept are reset (set it as root, or run ringmaster as root)"
            ),
        },
        Err(e) => crate::log!(warn:
            "cannot read net.ipv4.tcp_migrate_req ({e}): a retiring worker's listener may reset connections \
             that arrive after its last accept"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::listener::bind_reuseport_anchor;

    #[test]
    fn one_listener_per_worker_slot_kept_until_retired() {
        let (_anchor, local) = bind_reuseport_anchor(SocketAddr::from(([127, 0, 0, 1], 0))).expect("anchor");
        let mut mode = Reuseport::new(ListenAt { local, backlog: 64 }, Vec::new());
        let first = match mode.worker_listener(1).expect("listener") {
            WorkerListener::Own(fd) => fd.as_raw_fd(),
            other => panic!("{other:?}"),
        };
        let again = match mode.worker_listener(1).expect("listener") {
            WorkerListener::Own(fd) => fd.as_raw_fd(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first, again, "a slot's next process gets the same listener");
        mode.worker_listener(2).expect("second slot");
        assert_eq!(mode.own_listeners().iter().map(|(w, _)| *w).collect::<Vec<_>>(), [1, 2]);
        // The group answers on the anchor's port; the anchor itself takes nothing.
        for _ in 0..8 {
            TcpStream::connect(local).expect("connect");
        }
        mode.retire_worker(2);
        assert_eq!(mode.own_listeners().len(), 1);
        assert!(!mode.master_accepts(&[0], &crate::modes::testing::taking));
        assert_eq!(mode.accepting(), Accepting::OwnListeners);
    }
}
