//! The control socket (`--control PATH`) and `ringmaster ctl`: [`protocol`]
//! (commands and replies), [`clients`] (each client's line, replies,
//! deadlines and eviction, free of I/O), [`socket`] (creating the socket
//! without taking over a live one), [`ctl`] (the client, and `top`),
//! [`table`] (`status` for people) and [`json`] (reading the `status` line).

pub mod clients;
pub mod ctl;
pub mod json;
pub mod protocol;
pub mod socket;
pub mod table;

pub use clients::{ClientId, Clients};
pub use ctl::request;
pub use protocol::{parse_command, Command};
pub use socket::ControlSocket;
