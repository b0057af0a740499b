//! Which part this process plays: the master, or worker N. The master
//! re-executes the program for each worker with the worker's id in the
//! environment, as Node's `cluster` does with `NODE_UNIQUE_ID`.

use std::sync::OnceLock;

use ringmaster_balancer::spawn::{started_as_worker, ENV_WORKER_ID};

/// The part a process plays in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The master: it owns the listener and supervises the workers.
    Primary,
    /// A worker, with its id (1, 2, ...; kept across restarts).
    Worker {
        /// The worker's id.
        id: usize,
    },
}

/// This process's part, as Node's `cluster.isPrimary` / `cluster.worker.id` tell it.
/// Read once: a worker whose master has gone (it is being told to stop)
/// still plays its part.
pub fn role() -> Role {
    static ROLE: OnceLock<Role> = OnceLock::new();
    *ROLE.get_or_init(|| match std::env::var(ENV_WORKER_ID).ok().and_then(|id| id.parse().ok()) {
        Some(id) if started_as_worker() => Role::Worker { id },
        _ => Role::Primary,
    })
}

/// True in the master (Node's `cluster.isPrimary`).
pub fn is_primary() -> bool {
    role() == Role::Primary
}

/// This worker's id, `None` in the master (Node's `cluster.worker.id`).
pub fn worker_id() -> Option<usize> {
    match role() {
        Role::Worker { id } => Some(id),
        Role::Primary => None,
    }
}
