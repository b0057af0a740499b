//! Workers under an address-space limit (`ulimit -v`, `RLIMIT_AS`) with a
//! `--max-conns` their open-file limit keeps them from.
//!
//! - Each worker reserves its per-connection buffers for what it can hold
//!   (`--max-conns`, or what `RLIMIT_NOFILE` allows at its start), and says
//!   so as its capacity. Before, it reserved for `--max-conns` (seen:
//!   `ulimit -v 4000000`, `--max-conns 1048576 --max-header 65536`, 64 GiB
//!   asked, refused) and never started.

use crate::util;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use util::stats::{expect_worker, num};
use util::*;

/// The open-file limit the masters below run under (both soft and hard, so
/// that the master's raise to the hard limit changes nothing).
const NOFILE: u64 = 4096;
/// What a worker holds under [`NOFILE`], one descriptor per connection
/// beside its own (`rr`: no ring table): `NOFILE` less its 10 of overhead.
const HOLDS: u64 = NOFILE - 10;
/// The address space a process may have: a worker takes about 30 MB
/// besides its reservations (measured: 91 MB with 64 MB reserved).
const ADDRESS_SPACE: u64 = 192 << 20;
/// Far more than [`NOFILE`] allows.
const MAX_CONNS: &str = "1048576";
/// `NOFILE` x 16 KiB = 64 MiB of header buffers: they fit in [`ADDRESS_SPACE`]
/// (for `--max-conns` slots they would take 16 GiB).
const FITS: &str = "16384";
/// The binary under `RLIMIT_NOFILE` [`NOFILE`] and, if given, `RLIMIT_AS`
/// `address_space`, which its workers inherit.
fn under_limits(address_space: Option<u64>) -> Command {
    let mut cmd = Command::new(BIN);
    let set = |resource, limit: u64| {
        let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: setrlimit reads a valid rlimit; it is async-signal-safe, as pre_exec needs.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: the closure only calls setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            set(libc::RLIMIT_NOFILE, NOFILE)?;
            address_space.map_or(Ok(()), |bytes| set(libc::RLIMIT_AS, bytes))
        });
    }
    cmd
}

fn args(max_header: &'static str) -> [&'static str; 7] {
    ["--workers", "1", "--no-pin", "--max-conns", MAX_CONNS, "--max-header", max_header]
}

#[test]
fn a_worker_reserves_for_what_its_descriptors_let_it_hold() {
    let s = Server::start_command(under_limits(Some(ADDRESS_SPACE)), &args(FITS));
    let stats = s.wait_workers_ready(1, START_TIMEOUT);
    assert_eq!(num(&expect_worker(&stats, 1), "capacity"), HOLDS, "what it can hold: {stats}");
    let warned = s.wait_for_log(|l| l.starts_with("--max-conns 1048576 is more than"), Duration::ZERO);
    assert!(warned.contains(&format!("each worker will hold about {HOLDS} connections")), "{warned}");
    s.connect().get_ok();
}
