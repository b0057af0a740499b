//! Binary upgrade, as nginx's `SIGUSR2` and HAProxy's seamless reload: on
//! `upgrade` (or `SIGUSR2`) the running master starts a new master from the
//! file now at the path it was started from, with the same arguments, and
//! hands it every listening socket it holds and the control socket's
//! listener as inherited fds named in the environment ([`mod@env`]). The new
//! master binds nothing: it serves the same sockets, with the connections
//! already waiting in their queues. Once all its workers are ready it says
//! so on a channel it was handed too, and the old master stops accepting,
//! drains its workers and exits 0; if the new master exits first, says
//! nothing in time, or cannot be started at all, the old master stops it
//! and keeps serving.
//!
//! [`launch`] is the old master's side, [`inherit`] the new master's; the
//! master's steps are in `master::upgrade`.

pub mod env;
pub mod inherit;
pub mod launch;

/// What the new master writes on the readiness channel once every worker
/// of its own is ready.
pub const READY_LINE: &[u8] = b"ready\n";

/// What an old master writes on the readiness channel as it gives the
/// upgrade up, before it signals the new master: the new master learns it
/// from the channel, whoever else signalled it too (the kernel merges two
/// pending `SIGTERM`s and names only the first sender).
pub const GIVEN_UP_LINE: &[u8] = b"given up\n";
