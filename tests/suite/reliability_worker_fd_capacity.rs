//! A worker at its open-file limit in `rr` and `least` counts itself full
//! at what it holds, as the workers of `shared` and `reuseport` do after an
//! accept's `EMFILE`: once a batch from the master lost its fds on the way
//! (`MSG_CTRUNC`), its stats show `capacity` at its live connections, and
//! the master offers it nothing more until one of them closes or the
//! worker's tick finds a descriptor free; new clients get their `503` from
//! the master at once. Before, its capacity stayed at `--max-conns` (seen
//! under `prlimit --nofile=64` with `--max-conns 1000`: `capacity` 1000
//! beside 57 live connections and no descriptor free), and the master
//! offered it a new connection again after each 100 ms pause
//! (`DECLINED_PAUSE`), every offer's fd dropped by the kernel.

use crate::util;

use util::procs::{fd_limit_leaving, set_soft_fd_limit};
use util::stats::{expect_worker, num};
use util::*;

/// Clients refused while the worker is at its limit.
const CLIENTS: usize = 4;

fn a_worker_out_of_fds_shows_itself_full(mode: &str) {
    let s = Server::start(&["--mode", mode, "--workers", "1", "--no-pin"]);
    let ready = s.wait_workers_ready(1, START_TIMEOUT);
    let worker = num(&expect_worker(&ready, 1), "pid") as u32;
    set_soft_fd_limit(worker, fd_limit_leaving(worker, 0));

    // The first is offered to the worker, whose batch arrives without its
    // fd; the master refuses it then. The others are refused at once.
    for i in 0..CLIENTS {
        let mut conn = s.connect();
        let answer = conn.try_send(GET_CLOSE).and_then(|()| conn.try_read());
        let answer = answer.unwrap_or_else(|e| panic!("{mode}: client {i}: no answer ({e})"));
        assert_eq!(answer.status, 503, "{mode}: client {i}");
    }
    // The master refused the first once the worker's ack came, which
    // carries its capacity.
    let stats = s.stats();
    let shown = expect_worker(&stats, 1);
    assert_eq!(
        num(&shown, "capacity"),
        num(&shown, "live"),
        "{mode}: a worker with no descriptor free shows room: {stats}"
    );
}

#[test]
fn rr_a_worker_out_of_fds_shows_itself_full() {
    a_worker_out_of_fds_shows_itself_full("rr");
}

#[test]
fn least_a_worker_out_of_fds_shows_itself_full() {
    a_worker_out_of_fds_shows_itself_full("least");
}
