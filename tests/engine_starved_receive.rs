//! On io_uring a connection whose receive finds no buffer in the ring
//! (paused connections hold them all: `engine/src/driver/uring/held.rs`)
//! cannot read what its client sent; that wait is the worker's, so its
//! header timer starts over rather than close it (`starved` in
//! `engine/src/driver/uring/connection.rs`, the tick in `mod.rs`). Until
//! 2026-12-07 such a newcomer was closed at `--header-timeout`, its request
//! unread and unanswered.
//!
//! How the ring is made to run out: a paused connection first takes what
//! its receive read ahead into its carry buffer (16 KiB at least) and gives
//! those buffers back; it holds only what the carry cannot take (and its
//! receive is cancelled as it pauses). With small buffers, clients that
//! pipeline and never read leave the ring with room: each one's read-ahead
//! goes to its carry. So the ring here has a few buffers each larger than a
//! carry, and a paused hog holds every buffer it read into. Each hog writes
//! a request whose answer is far larger than the socket buffers between
//! them, then a request with a body, in one write: its connection pauses
//! behind the first answer, the carry takes part of the buffer, the buffer
//! stays held. More hogs than buffers: the ring runs out.
//!
//! Each hog reads a trickle of its answer meanwhile, so the worker sees a
//! client that reads (`held.rs`: one that reads nothing is cut off after two
//! patiences, and the ring freed), however long the test waits. The
//! newcomer's header deadline is known to be judged once a witness is
//! answered `408`: its body deadline comes later, and its receive, armed
//! with nothing to read, never asks the ring for a buffer.
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
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig, FixedBody};

mod in_process;

/// Receive buffers, each larger than a connection's carry buffer (16 KiB):
/// a paused connection holds every one its receive read into.
const BUFFERS: u16 = 4;
const BUFFER: u32 = 64 * 1024;
/// Clients that write ahead: more than there are buffers.
const HOGS: usize = BUFFERS as usize + 2;
/// The body each hog sends after its first request, in the same write: its
/// input fills most of a buffer.
const HOG_BODY: usize = 48 * 1024;
/// The answer to every request: far larger than the socket buffers of a
/// client that reads a trickle (4 MiB at most on the server's side), so a
/// hog's connection stays paused behind it until its client reads all.
const ANSWER: usize = 16 << 20;
/// A hog's trickle: at most this much a read, and a pause after each
/// (1.3 MB a second: 10 times what `held.rs` keeps as a reader).
const TRICKLE: usize = 64 * 1024;
const TRICKLE_PAUSE: Duration = Duration::from_millis(50);
const HEADER_TIMEOUT: Duration = Duration::from_millis(200);
/// The witness's body timer: from before the hogs come to well after the
/// newcomer's header deadline, so its `408` shows that deadline has been
/// judged.
const BODY_TIMEOUT: Duration = Duration::from_millis(1500);
/// A bound for a test that fails, far beyond what passing takes.
const PATIENCE: Duration = Duration::from_secs(30);

fn config() -> EngineConfig {
    EngineConfig {
        backend: Backend::Uring,
        max_conns: 16,
        recv_buffers: BUFFERS,
        recv_buffer_size: BUFFER,
        header_timeout: HEADER_TIMEOUT,
        body_timeout: BODY_TIMEOUT,
        // The hogs' writer's clock: it ends none of them while the test runs.
        idle_timeout: Duration::from_secs(60),
        ..EngineConfig::default()
    }
}

/// A hog's one write: a request answered with [`ANSWER`] bytes, then one
/// with a body.
fn hog_input() -> Vec<u8> {
    let mut bytes = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    bytes.extend_from_slice(
        format!("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: {HOG_BODY}\r\n\r\n").as_bytes(),
    );
    bytes.resize(bytes.len() + HOG_BODY, b'b');
    bytes
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    stream
}

/// Reads `count` answers whole: their statuses, or what cut them short.
/// Until `hurry` is set it reads a trickle ([`TRICKLE`] a read, a pause
/// after each); all it can from then on.
fn read_answers(stream: &mut TcpStream, count: usize, hurry: &AtomicBool) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    let mut input: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    // Body bytes of the current answer still to come.
    let mut body_left = 0usize;
    loop {
        if body_left == 0 {
            if let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&input[..end]).into_owned();
                let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or(format!("a head: {head:?}"))?;
                if (100..200).contains(&status) {
                    // An interim answer (`100 Continue`): no body.
                    statuses.push(status);
                    input.drain(..end + 4);
                    continue;
                }
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|len| len.parse().ok())
                    .ok_or(format!("no length in {head:?}"))?;
                statuses.push(status);
                input.drain(..end + 4);
                body_left = length;
            }
        }
        if body_left > 0 && !input.is_empty() {
            let take = body_left.min(input.len());
            input.drain(..take);
            body_left -= take;
            continue;
        }
        if statuses.len() == count && body_left == 0 {
            return Ok(statuses);
        }
        let hurried = hurry.load(Ordering::Relaxed);
        let len = if hurried { chunk.len() } else { TRICKLE };
        match stream.read(&mut chunk[..len]) {
            Ok(0) => return Err(format!("closed after {statuses:?}, {body_left} bytes of a body left")),
            Ok(n) if body_left >= n && input.is_empty() => body_left -= n,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {statuses:?}, {body_left} bytes of a body left")),
        }
        if !hurried {
            thread::sleep(TRICKLE_PAUSE);
        }
    }
}

/// The hogs, one after another: each one's input is in the worker's socket
/// before the next connects. Each reads a trickle of its answers from now
/// on, all of them once `hurry` is set; each thread returns what it read.
fn start_hogs(
    address: SocketAddr,
    count: usize,
    hurry: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Result<Vec<u16>, String>>> {
    (0..count)
        .map(|_| {
            let mut hog = connect(address);
            hog.write_all(&hog_input()).expect("hog write");
            in_process::wait_all_acknowledged(&hog);
            let hurry = Arc::clone(hurry);
            thread::spawn(move || read_answers(&mut hog, 2, &hurry))
        })
        .collect()
}

/// `who`'s request, sent while the hogs hold the ring, is neither answered
/// nor closed for a header timeout from now (what was wrong: a close, its
/// request unread; any close came before now, and a header timeout is ample
/// for it to arrive); once the hogs read all, it is answered, and every hog
/// gets both its answers.
fn answered_once_the_hogs_read(
    stream: &mut TcpStream,
    who: &str,
    hogs: Vec<thread::JoinHandle<Result<Vec<u16>, String>>>,
    hurry: &AtomicBool,
) {
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
    for (index, hog) in hogs.into_iter().enumerate() {
        assert_eq!(hog.join().expect("hog reader"), Ok(vec![200, 200]), "hog {index}");
    }
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
    for (index, hog) in hogs.into_iter().enumerate() {
        assert_eq!(hog.join().expect("hog reader"), Ok(vec![200, 200]), "hog {index}");
    }
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
    for (index, hog) in hogs.into_iter().enumerate() {
        assert_eq!(hog.join().expect("hog reader"), Ok(vec![200, 200]), "hog {index}");
    }
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
    for (index, hog) in hogs.into_iter().enumerate() {
        assert_eq!(hog.join().expect("hog reader"), Ok(vec![200, 200]), "hog {index}");
    }
    assert_eq!(count, 1, "counted reclaimable: the witness and the client whose request waits for a buffer");
    drop(witness);
    worker.stop();
}
