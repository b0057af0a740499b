//! Running under systemd: [`notify`] (readiness, reload and stop as
//! `Type=notify` expects, `MAINPID=` after an upgrade, the watchdog) and
//! [`activation`] (listening sockets systemd passes). Both speak the
//! documented protocols directly (`sd_notify(3)`, `sd_listen_fds(3)`):
//! no libsystemd.

pub mod activation;
pub mod notify;

pub use activation::{listen_fds, Activated};
pub use notify::Notifier;
