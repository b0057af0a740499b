//! Where the master's listening sockets come from at start: handed down by
//! an old master (binary upgrade), else passed by systemd (socket
//! activation), else bound here. In `reuseport` mode the master holds the
//! port with an anchor that does not listen, and each worker slot's own
//! listener (kept by the mode) may come down from an old master too; the
//! steering program (`--steer`) is loaded here as well.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use crate::bpf::Steering;
use crate::config::{MasterConfig, Mode, SteerChoice};
use crate::error::{Context, Error, Result};
use crate::listener::{adopt, adopt_anchor, bind_reuseport_anchor, listen, ListenerKey};
use crate::modes::reuseport;
use crate::systemd::listen_fds;
use crate::upgrade::inherit::Inherited;

/// The metrics listener's backlog: scrapers are few.
const METRICS_BACKLOG: i32 = 64;

/// The sockets a master starts with.
#[derive(Debug)]
pub(super) struct Sockets {
    /// The listener workers serve (`reuseport`: the anchor holding the port).
    pub listener: OwnedFd,
    /// Its address.
    pub local: SocketAddr,
    /// `reuseport`: the slot listeners an old master handed down, by worker id.
    pub slots: Vec<(usize, OwnedFd)>,
    /// `reuseport --steer load`: the loaded steering program (`None`: the hash).
    pub steering: Option<Steering>,
    /// The metrics endpoint's listener and address (`--metrics`).
    pub metrics: Option<(OwnedFd, SocketAddr)>,
    /// The listeners came from systemd (socket activation).
    pub activated: bool,
}

/// Takes what `inherited` holds, else what systemd passed, else binds.
pub(super) fn open(config: &MasterConfig, inherited: Option<&mut Inherited>) -> Result<Sockets> {
    let reuseport = config.mode == Mode::Reuseport;
    let mut activation = if inherited.is_none() { listen_fds()? } else { None };
    let activated = inherited.as_ref().map_or(activation.is_some(), |i| i.activated());
    if activated && reuseport {
        // systemd's socket listens: in the group it would take a share of
        // the connections nobody accepts, and a port it holds without
        // SO_REUSEPORT lets no slot listener join.
        return Err(Error::Config(
            "--mode reuseport binds one listener per worker itself; it cannot serve a socket systemd passed \
             (use --mode rr, least or shared with socket activation)"
                .into(),
        ));
    }
    let expect = |addr: SocketAddr| (!activated).then_some(addr);
    let mut inherited = inherited;
    let handed_main = inherited.as_mut().and_then(|i| i.take_listener(ListenerKey::Main));
    let (listener, local) = match handed_main {
        Some(fd) if reuseport => {
            adopt_anchor(fd, config.bind).context(format_args!("the anchor handed down for {}", config.bind))?
        }
        Some(fd) => {
            adopt(fd, expect(config.bind)).context(format_args!("the listener handed down for {}", config.bind))?
        }
        None => match activation.as_mut().and_then(|a| a.main.take()) {
            Some(passed) => {
                crate::log!(
                    "socket activation: serving on the socket systemd passed (fd {}, {}); --bind is not used",
                    passed.number,
                    passed.local
                );
                (passed.fd, passed.local)
            }
            None if reuseport => {
                bind_reuseport_anchor(config.bind).context(format_args!("cannot listen on {}", config.bind))?
            }
            None => listen(config.bind, config.backlog).context(format_args!("cannot listen on {}", config.bind))?,
        },
    };
    let mut slots = Vec::new();
    if let Some(inherited) = inherited.as_mut().filter(|_| reuseport) {
        for (worker, fd) in inherited.take_slot_listeners() {
            let (fd, _) =
                adopt(fd, Some(local)).context(format_args!("the listener handed down for worker {worker}"))?;
            slots.push((worker, fd));
        }
    }
    if !reuseport && config.steer != SteerChoice::Auto {
        return Err(Error::Config("--steer applies to --mode reuseport only".into()));
    }
    let steering = if reuseport { reuseport::choose_steering(config.steer)? } else { None };
    // A program loaded for SELECT_OR_MIGRATE migrates whatever the sysctl says.
    if reuseport && !steering.as_ref().is_some_and(Steering::migrates) {
        reuseport::enable_migration();
    }
    let metrics = match inherited.as_mut().and_then(|i| i.take_listener(ListenerKey::Metrics)) {
        Some(fd) => Some(adopt(fd, config.metrics.and_then(expect)).context("the metrics listener handed down")?),
        None => match activation.and_then(|a| a.metrics) {
            Some(passed) => Some((passed.fd, passed.local)),
            None => match config.metrics {
                Some(addr) => {
                    Some(listen(addr, METRICS_BACKLOG).context(format_args!("--metrics: cannot listen on {addr}"))?)
                }
                None => None,
            },
        },
    };
    if let Some((_, at)) = &metrics {
        crate::log!(info { metrics: at.to_string() }: "metrics on {}", crate::metrics::request::page_url(*at));
    }
    Ok(Sockets { listener, local, slots, steering, metrics, activated })
}
