//! `reuseport --steer hash` with two workers, as the tests of one worker's
//! listener (stopped, retired, set aside) start it, and the clients the
//! kernel's hash places on that listener: connected and their requests
//! written, waiting there until someone accepts them.

use std::path::Path;

use super::sockets::accept_queue;
use super::{Conn, Server, GET_CLOSE};

/// A `reuseport --steer hash` master of two unpinned workers on `backend`,
/// with its control socket at `control` and `more` arguments.
pub fn two_hashed_workers(backend: &str, control: &Path, more: &[&str]) -> Server {
    let control = control.to_str().expect("UTF-8 path");
    let mut args = vec!["--mode", "reuseport", "--steer", "hash", "--workers", "2", "--no-pin", "--backend", backend];
    args.extend_from_slice(&["--control", control]);
    args.extend_from_slice(more);
    Server::start(&args)
}

/// Clients, each with a `Connection: close` request written, until `at_least`
/// wait on the listener `inode` (the hash of their ports places them; the
/// other workers answer the rest meanwhile): all of them.
pub fn clients_until_queued(s: &Server, inode: u64, at_least: u64) -> Vec<Conn> {
    let mut clients = Vec::new();
    while accept_queue(inode).unwrap_or(0) < at_least {
        assert!(clients.len() < 200, "the kernel's hash never placed {at_least} clients on listener {inode}");
        let mut c = s.connect();
        c.send(GET_CLOSE);
        clients.push(c);
    }
    clients
}

/// Each client's answer: its status, or `no answer (why)`.
pub fn answers(clients: &mut [Conn]) -> Vec<String> {
    clients
        .iter_mut()
        .map(|c| match c.try_read() {
            Ok(resp) => resp.status.to_string(),
            Err(e) => format!("no answer ({e})"),
        })
        .collect()
}
