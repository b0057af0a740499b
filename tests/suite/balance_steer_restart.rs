//! `reuseport --steer load` and a worker that dies: the master keeps its
//! slot's listener, so what waits there is not lost, but nobody accepts it
//! until the worker's next process runs, at least 100 ms later (the restart
//! back-off, up to 15 s for a worker that keeps crashing, plus its start).
//! Another worker with room takes it: the master hands it on as it does what
//! waits on a stalled worker. Until 2026-12-07 it waited for the restart.
//! Loading BPF needs root: without it the test says so and passes.

use crate::balance_steer::{may_steer, one_at_a_time, steer_of_key, wait_queued_on_one, BothFull};
use crate::util;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

use util::load::CLIENT_TIMEOUT;
use util::stats::{expect_worker, num};
use util::*;

#[test]
fn steer_load_what_waits_on_a_dead_workers_listener_goes_to_a_worker_with_room() {
    if !may_steer() {
        return;
    }
    let _one = one_at_a_time();
    let BothFull { s, first, second, first_on, listeners } = BothFull::start();
    let listener = |id: u64| listeners[id as usize - 1];
    // Every worker full: the kernel's hash places the third on one's queue.
    let mut third = TcpStream::connect(s.addr()).expect("connect the third");
    third.write_all(GET_CLOSE).expect("the third's request");
    let queued_on = wait_queued_on_one(listener);
    let stats = s.stats();
    let dead = num(&expect_worker(&stats, queued_on), "pid") as i32;
    // The worker it waits on dies (its own client with it); the other gets room.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(dead), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let (_gone_with_it, given_room) = if queued_on == first_on { (first, second) } else { (second, first) };
    let died = Instant::now();
    drop(given_room);
    third.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
    let mut reader = BufReader::new(third);
    let answer = read_response(&mut reader).map(|r| r.status);
    let waited = died.elapsed();
    assert!(matches!(answer, Ok(200)), "the third connection, waiting on dead worker {queued_on}: {answer:?}");
    // Handed on by the master to the worker with room, not left for the
    // dead one's next process.
    let stats = s.stats();
    let rescued = steer_of_key(&stats, queued_on, "rescued");
    assert_eq!(rescued, 1, "answered {} ms after worker {queued_on} died, not rescued: {stats}", waited.as_millis());
}
