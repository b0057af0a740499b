//! On io_uring a connection whose receive finds no buffer in the ring
//! (paused connections hold them all: `engine/src/driver/uring/held.rs`)
//! cannot read what its client sent; that wait is the worker's, so its
//! header timer starts over rather than close it (`starved` in
//! `engine/src/driver/uring/connection/recv.rs`, the tick in `tick.rs`). Until
//! 2026-12-07 such a newcomer was closed at `--header-timeout`, its request
//! unread and unanswered.
//!
//! How the ring is made to run out, and how the hogs that hold it read:
//! `starved_hogs`. The newcomer's header deadline is known to be judged
//! once a witness is answered `408`: its body deadline comes later, and its
//! receive, armed with nothing to read, never asks the ring for a buffer.
//!
//! While the newcomer waits, its receive waits for a buffer to come back
//! (`awaiting_buffer`): until 2026-12-07 it was armed again at once, found
//! the ring empty at once, and the worker spun on its CPU for as long as
//! the hogs held the ring.
//!
//! Clients that connect while the hogs hold the ring and send nothing (a
//! pool opened ahead) must not hold up those whose input waits once the
//! buffers come back: the kernel picks a receive's buffer before it reads,
//! so each one's receive, armed at once, failed at once on its empty
//! socket, waited for a buffer ahead of the others, and took a wake-up it
//! did not use (2026-12-07: 100 such clients held the hogs' and a
//! newcomer's answers 10 s, a tick each).
//!
//! Such a client whose receive failed so (armed before any receive found
//! the ring empty) is not starved once its receive, armed again, waits for
//! input: until 2026-12-07 it stayed starved until input came, and a
//! silent one was never closed at its header timeout, before or after the
//! hogs read.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{EngineConfig, FixedBody};

mod in_process;
mod starved_hogs;

use starved_hogs::{connect, finish_hogs, read_answers, start_hogs, Hog, ANSWER, BUFFERS, HOGS, PATIENCE};

const HEADER_TIMEOUT: Duration = Duration::from_millis(200);
/// The witness's body timer: from before the hogs come to well after the
/// newcomer's header deadline, so its `408` shows that deadline has been
/// judged.
const BODY_TIMEOUT: Duration = Duration::from_millis(1500);

fn config() -> EngineConfig {
    starved_hogs::config(HEADER_TIMEOUT, BODY_TIMEOUT)
}

/// `who`'s request, sent while the hogs hold the ring, is neither answered
/// nor closed for a header timeout from now (what was wrong: a close, its
/// request unread; any close came before now, and a header timeout is ample
/// for it to arrive); once the hogs read all, it is answered, and every hog
/// gets both its answers.
fn answered_once_the_hogs_read(stream: &mut TcpStream, who: &str, hogs: Vec<Hog>, hurry: &AtomicBool) {
    stream.set_read_timeout(Some(HEADER_TIMEOUT)).expect("read timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        Ok(0) => panic!("{who} was closed, its request unread and unanswered"),
        Ok(_) => panic!("{who} was answered while the hogs held the ring: the ring did not run out"),
        Err(e) => panic!("{who}'s connection ended, its request unanswered: {e}"),
    }
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    // The hogs read all: what they held is taken up, and the request is read at last.
    hurry.store(true, Ordering::Relaxed);
    assert_eq!(read_answers(stream, 1, hurry), Ok(vec![200]), "{who} once the hogs read");
    finish_hogs(hogs, hurry);
}

/// CPU time of this process's threads (the worker's among them) so far.
fn process_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// One test at a time: the other's threads would count in, and end out of,
/// [`process_cpu`].
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Clients that connect and send nothing while the hogs hold the ring.
const IDLERS: usize = 200;
/// A bound for the newcomer's answer once the hogs read: well over what
/// passing takes (0.15 s quiet, a few seconds beside busy loops, as the
/// hogs' first answers must go out before their buffers come back), well
/// under one tick (100 ms) per idler ahead of it (20 s).
const PROMPTLY: Duration = Duration::from_secs(6);

#[test]
fn idle_clients_accepted_while_the_ring_was_empty_do_not_hold_up_input_once_it_has_room() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let config = EngineConfig { max_conns: 2 * IDLERS, ..config() };
    let (worker, address) = in_process::spawn_on_loopback(config, FixedBody::new(vec![b'x'; ANSWER]));
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let idlers: Vec<TcpStream> = (0..IDLERS).map(|_| connect(address)).collect();
    let mut newcomer = connect(address);
    newcomer.write_all(b"GET /newcomer HTTP/1.1\r\nHost: a\r\n\r\n").expect("newcomer write");
    in_process::wait_all_acknowledged(&newcomer);
    // Time for the worker to accept them all while the hogs hold the ring
    // (one accepted later, once the ring has room, cannot show the fault:
    // the test passes then, never fails for it).
    thread::sleep(HEADER_TIMEOUT);
    let start = Instant::now();
    hurry.store(true, Ordering::Relaxed);
    assert_eq!(read_answers(&mut newcomer, 1, &hurry), Ok(vec![200]), "the newcomer, once the hogs read");
    let answered = start.elapsed();
    finish_hogs(hogs, &hurry);
    assert!(
        answered < PROMPTLY,
        "once the hogs read, the newcomer was answered in {answered:?}: behind {IDLERS} idle clients"
    );
    drop(idlers);
    worker.stop();
}

#[test]
fn a_request_that_waits_for_a_receive_buffer_past_the_header_timeout_is_answered() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (worker, address) = in_process::spawn_on_loopback(config(), FixedBody::new(vec![b'x'; ANSWER]));
    let hurry = Arc::new(AtomicBool::new(false));
    // The witness: a request head whose body never comes, read while the
    // ring has room (its `100 Continue` says so). Its receive waits for
    // input it never gets, so it never finds the ring empty: it is answered
    // `408` at its body deadline, in the tick that judges the newcomer's
    // header deadline (which comes earlier) or in one after it.
    let mut witness = connect(address);
    let head = "POST /witness HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n";
    // Its body deadline is judged no earlier than this.
    let witness_sent = Instant::now();
    witness.write_all(head.as_bytes()).expect("witness write");
    let read_all = AtomicBool::new(true);
    assert_eq!(read_answers(&mut witness, 1, &read_all), Ok(vec![100]), "the witness's head");
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut newcomer = connect(address);
    newcomer.write_all(b"GET /newcomer HTTP/1.1\r\nHost: a\r\n\r\n").expect("newcomer write");
    let newcomer_sent = Instant::now();
    // A header timeout to spare for the worker to accept it.
    assert!(
        newcomer_sent - witness_sent + HEADER_TIMEOUT * 2 < BODY_TIMEOUT,
        "the newcomer came {:?} after the witness's head: its deadline may come after the witness's",
        newcomer_sent - witness_sent
    );
    // The newcomer's header deadline has passed and been judged once the
    // witness is answered.
    let cpu_before = process_cpu();
    assert_eq!(read_answers(&mut witness, 1, &read_all), Ok(vec![408]), "the witness, at its body deadline");
    // Meanwhile the worker waited for a buffer to come back; it did not
    // arm the newcomer's receive again and again, each finding the ring
    // empty at once (a spin: the process's CPU as long as the wait). The
    // hogs' trickles cost it a few percent.
    let (cpu, waited) = (process_cpu() - cpu_before, newcomer_sent.elapsed());
    assert!(cpu < waited / 2, "the process spent {cpu:?} of CPU in the {waited:?} the newcomer waited: a spin");
    // While the hogs hold the ring, the newcomer's request cannot be read:
    // no answer, and (what was wrong) no close at its header timeout. (Its
    // close, if any, went out with the witness's answer: a header timeout
    // is ample for it to arrive.)
    answered_once_the_hogs_read(&mut newcomer, "the newcomer", hogs, &hurry);
    drop(witness);
    worker.stop();
}

/// A keep-alive client's next request, sent before the worker drains and
/// unread for want of a buffer, is answered in the drain: until 2026-12-07
/// the drain's hurried deadline for idle connections closed it unanswered.
/// A witness, idle since just after the client and with nothing sent, is
/// closed at its own hurried deadline, which comes no earlier.
#[test]
fn a_drain_answers_a_request_that_waits_for_a_receive_buffer() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (worker, address) = in_process::spawn_on_loopback(config(), FixedBody::new(vec![b'x'; ANSWER]));
    let read_all = AtomicBool::new(true);
    let mut client = connect(address);
    let mut witness = connect(address);
    for (name, stream) in [("the client", &mut client), ("the witness", &mut witness)] {
        stream.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").expect("first request");
        assert_eq!(read_answers(stream, 1, &read_all), Ok(vec![200]), "{name}'s first request");
    }
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    client.write_all(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n").expect("second request");
    in_process::wait_all_acknowledged(&client);
    // `stop` returns once the drain is over: from a thread of its own.
    let stopping = thread::spawn(move || worker.stop());
    let mut byte = [0u8; 1];
    match witness.read(&mut byte) {
        Ok(0) => {}
        other => panic!("the witness, idle in the drain, was not closed: {other:?}"),
    }
    // The client's hurried deadline has passed too: closed then (what was
    // wrong), it would have been in the same look or an earlier one.
    answered_once_the_hogs_read(&mut client, "the client, its request sent before the drain,", hogs, &hurry);
    stopping.join().expect("the worker's drain");
}

/// How soon a silent client is closed once its header deadline passes:
/// the tick that judges it, and ticks to spare for a busy machine.
const CLOSED_BY: Duration = Duration::from_secs(3);

/// A client that connects once the hogs hold every buffer, before any
/// receive has found the ring empty, and sends nothing: its receive, armed
/// without waiting for input, fails at once (the kernel picks a buffer
/// before it reads), as if its input waited. Armed again, it waits for
/// input that never comes; its header timer must run then. Until
/// 2026-12-07 it counted as starved for good (only input ended that),
/// each deadline started over, and the connection stayed open with nothing
/// sent, past its header timeout, for as long as its client kept it, the
/// hogs' reads notwithstanding; nor could a full worker reclaim it.
#[test]
fn a_silent_client_whose_receive_found_the_ring_empty_is_closed_at_its_header_timeout() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (worker, address) = in_process::spawn_on_loopback(config(), FixedBody::new(vec![b'x'; ANSWER]));
    let hurry = Arc::new(AtomicBool::new(false));
    // As many as there are buffers: each holds one, and none finds the ring
    // empty (a receive that did would have the silent one's wait for input).
    let hogs = start_hogs(address, BUFFERS as usize, &hurry);
    let mut silent = connect(address);
    let connected = Instant::now();
    silent.set_read_timeout(Some(HEADER_TIMEOUT + CLOSED_BY)).expect("read timeout");
    let mut byte = [0u8; 1];
    let outcome = silent.read(&mut byte);
    let waited = connected.elapsed();
    hurry.store(true, Ordering::Relaxed);
    finish_hogs(hogs, &hurry);
    match outcome {
        Ok(0) => {}
        Ok(_) => panic!("the silent client was sent something"),
        Err(e) => panic!("the silent client was not closed in {waited:?} (header timeout {HEADER_TIMEOUT:?}): {e}"),
    }
    worker.stop();
}

/// How long a connection is idle before a full worker may reclaim it
/// (the engine's `MIN_IDLE_MS`).
const MIN_IDLE: Duration = Duration::from_secs(1);

/// A keep-alive connection whose next request waits in its socket for a
/// receive buffer is not reclaimed to make room (its request would go
/// unanswered), so it is not counted reclaimable either: the master counts
/// those as room and offers a full worker a connection it must decline.
/// Until 2026-12-07 it was. A witness, idle since just after it, counts.
#[test]
fn a_keep_alive_connection_whose_next_request_waits_for_a_buffer_is_not_counted_reclaimable() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let (worker, stats) = in_process::spawn_counted_with(config(), listener, FixedBody::new(vec![b'x'; ANSWER]));
    let reclaimable = || stats.slot(0).expect("slot 0").snapshot().reclaimable;
    let read_all = AtomicBool::new(true);
    let mut client = connect(address);
    let mut witness = connect(address);
    for (name, stream) in [("the client", &mut client), ("the witness", &mut witness)] {
        stream.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").expect("first request");
        assert_eq!(read_answers(stream, 1, &read_all), Ok(vec![200]), "{name}'s first request");
    }
    let witness_idle = Instant::now();
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    client.write_all(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n").expect("second request");
    in_process::wait_all_acknowledged(&client);
    // Both have been idle long enough once the witness counts, and a tick
    // after that (the client's longer).
    let counted = Instant::now();
    while reclaimable() == 0 || witness_idle.elapsed() < MIN_IDLE + Duration::from_millis(300) {
        assert!(counted.elapsed() < PATIENCE, "the idle witness was never counted reclaimable");
        thread::sleep(Duration::from_millis(10));
    }
    let count = reclaimable();
    hurry.store(true, Ordering::Relaxed);
    assert_eq!(read_answers(&mut client, 1, &hurry), Ok(vec![200]), "the client's second request");
    finish_hogs(hogs, &hurry);
    assert_eq!(count, 1, "counted reclaimable: the witness and the client whose request waits for a buffer");
    drop(witness);
    worker.stop();
}
