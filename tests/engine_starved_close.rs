//! On io_uring, clients that close while every receive buffer of the ring
//! is held by paused connections (`starved_hogs`): their receives wait for
//! a buffer, and the kernel reports a FIN or a reset to a receive only with
//! one. Until 2026-12-07 such a client kept its descriptor and its place
//! under `--max-conns` for as long as the ring stayed empty, past its
//! header timeout (a starved connection's timers start over: its wait is
//! the worker's), and a full worker took no newcomer meanwhile (its accepts
//! wait for free places; in `rr` and `least` the master sees it full). Its
//! reset watch now sees the close (`engine/src/driver/uring/starved.rs`):
//! a reset ends the connection, and after a FIN what the client sent is
//! read without a ring buffer and taken as its receive would take it.
//!
//! Until 2026-12-07 a FIN behind unread input still waited for a buffer:
//! a client that sent part of a request and a FIN held its place until the
//! hogs read, and one that sent a whole request and half-closed got its
//! answer only then.
//!
//! A client whose burst is more than one such read takes, and whose first
//! answer pauses its connection between reads, gets every answer, then the
//! server's close (2026-12-07: no fault found).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig, FixedBody, Handler, Request, Response, StatsBlock};

mod in_process;
mod starved_hogs;

use starved_hogs::{config, connect, finish_hogs, posts, read_answers, start_hogs, Hog, ANSWER, HOGS, PATIENCE};

/// A test of `scenario(backend, plain)` on io_uring with direct descriptors
/// and with plain ones, and on epoll (which has no ring to run out).
macro_rules! on_each_driver {
    ($scenario:ident: $direct:ident, $plain:ident, $epoll:ident) => {
        #[test]
        fn $direct() {
            $scenario(Backend::Uring, false);
        }

        #[test]
        fn $plain() {
            $scenario(Backend::Uring, true);
        }

        #[test]
        fn $epoll() {
            $scenario(Backend::Epoll, true);
        }
    };
}

/// Far beyond what the test waits: no timer explains a close.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
const BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Places under `--max-conns`: the hogs and the clients that quit fill them.
const MAX_CONNS: usize = 16;
/// Clients that quit, connected before the hogs and answered once (idle
/// keep-alive connections), and connected after them (nothing answered).
const IDLE_QUITTERS: usize = 2;
const NEW_QUITTERS: usize = MAX_CONNS - HOGS - IDLE_QUITTERS;
/// How soon the places of clients that quit are free: a few ticks (100 ms)
/// to spare for a busy machine. The hogs hold the ring far longer (their
/// answers, 32 MiB each, at 1.3 MB a second).
const PROMPTLY: Duration = Duration::from_secs(2);

/// [`FixedBody`] for a worker whose accepts make plain descriptors: it
/// asks for its clients' addresses (`Handler::wants_peer_addr`).
struct PlainDescriptors(FixedBody);

impl Handler for PlainDescriptors {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) {
        self.0.handle(req, res);
    }

    fn fixed_body(&self) -> Option<&[u8]> {
        self.0.fixed_body()
    }

    fn shared_fixed_body(&self) -> Option<Arc<[u8]>> {
        self.0.shared_fixed_body()
    }

    fn wants_peer_addr(&self) -> bool {
        true
    }
}

fn spawn(backend: Backend, plain: bool) -> (in_process::InProcessWorker, Arc<StatsBlock>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local addr");
    let config = EngineConfig { backend, max_conns: MAX_CONNS, ..config(HEADER_TIMEOUT, BODY_TIMEOUT) };
    let body = FixedBody::new(vec![b'x'; ANSWER]);
    let (worker, stats) = if plain {
        in_process::spawn_counted_with(config, listener, PlainDescriptors(body))
    } else {
        in_process::spawn_counted_with(config, listener, body)
    };
    (worker, stats, address)
}

/// Waits up to `bound` for the worker's open connections to be `wanted`:
/// how long that took, or the count at the bound.
fn live_reaches(stats: &StatsBlock, wanted: usize, bound: Duration) -> Result<Duration, u64> {
    let start = Instant::now();
    loop {
        let live = stats.slot(0).expect("slot 0").snapshot().live;
        if live == wanted as u64 {
            return Ok(start.elapsed());
        }
        if start.elapsed() > bound {
            return Err(live);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Idle keep-alive clients, silent ones and ones that sent part of a
/// request fill a worker whose ring the hogs hold, then quit: the silent
/// and idle with a FIN, the others with a reset. Their places are free
/// at once, and newcomers take them, while the hogs hold the ring still.
fn clients_that_quit_while_the_ring_is_empty_give_their_places_back(backend: Backend, plain: bool) {
    let (worker, stats, address) = spawn(backend, plain);
    let read_all = AtomicBool::new(true);
    let idle: Vec<TcpStream> = (0..IDLE_QUITTERS)
        .map(|_| {
            let mut client = connect(address);
            client.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").expect("first request");
            assert_eq!(read_answers(&mut client, 1, &read_all), Ok(vec![200]), "an idle client's first request");
            client
        })
        .collect();
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let quitters: Vec<TcpStream> = (0..NEW_QUITTERS).map(|_| connect(address)).collect();
    let full = live_reaches(&stats, MAX_CONNS, PATIENCE);
    for (index, mut quitter) in quitters.into_iter().enumerate() {
        if index % 2 == 0 {
            drop(quitter);
        } else {
            quitter.write_all(b"GET /never-finished HTTP/1.1\r\nHo").expect("part of a request");
            in_process::wait_all_acknowledged(&quitter);
            in_process::reset(quitter);
        }
    }
    drop(idle);
    places_back(worker, &stats, address, (hogs, &hurry)).check(full, "quit");
}

/// How soon the places of clients that quit were free (or the open
/// connections at the bound), and whether newcomers took them then.
struct PlacesBack {
    freed: Result<Duration, u64>,
    taken: Result<Duration, u64>,
}

/// Waits for the places of the clients that quit to be free (the hogs'
/// alone held), then for newcomers to take them; then the hogs finish and
/// the worker stops.
fn places_back(
    worker: in_process::InProcessWorker,
    stats: &StatsBlock,
    address: SocketAddr,
    (hogs, hurry): (Vec<Hog>, &AtomicBool),
) -> PlacesBack {
    let freed = live_reaches(stats, HOGS, PROMPTLY);
    // Newcomers take the places (a full worker arms no accept, and they
    // would wait in the listen queue).
    let newcomers: Vec<TcpStream> = (0..MAX_CONNS - HOGS).map(|_| connect(address)).collect();
    let taken = live_reaches(stats, MAX_CONNS, PROMPTLY);
    finish_hogs(hogs, hurry);
    drop(newcomers);
    worker.stop();
    PlacesBack { freed, taken }
}

impl PlacesBack {
    /// `full`: the worker held the hogs and the quitters, who then `quit`.
    fn check(&self, full: Result<Duration, u64>, quit: &str) {
        assert!(full.is_ok(), "the worker never held the hogs and the quitters: {full:?} connections");
        if let Err(live) = self.freed {
            panic!(
                "{} clients {quit} while the hogs held the ring, and {} connections of {} were still open \
                 {PROMPTLY:?} after",
                MAX_CONNS - HOGS,
                live - HOGS as u64,
                MAX_CONNS - HOGS
            );
        }
        let taken = self.taken;
        assert!(taken.is_ok(), "newcomers were not taken into the places freed: {taken:?} connections");
    }
}

// On epoll no ring runs out (each connection reads into the worker's one
// receive buffer, and what it keeps goes to its own carry): the same
// clients' places are free at once there too.
on_each_driver!(
    clients_that_quit_while_the_ring_is_empty_give_their_places_back:
    clients_that_quit_while_the_ring_is_empty_give_their_places_back_direct_descriptors,
    clients_that_quit_while_the_ring_is_empty_give_their_places_back_plain_descriptors,
    clients_that_quit_beside_the_hogs_give_their_places_back_on_epoll
);

/// Clients that send part of a request (a head cut short, or a head and
/// part of a body larger than a receive buffer of the worker's own) and
/// close with a FIN while the hogs hold the ring: the FIN comes behind
/// input no buffer of the ring can read. Their input is read without one
/// (`starved.rs`), the request can no longer complete, and each is closed
/// unanswered, as a receive would close it, while the hogs hold the ring
/// still; newcomers take their places. Until 2026-12-07 each held its
/// place until a buffer came back.
fn clients_that_send_part_of_a_request_and_a_fin_while_the_ring_is_empty_are_closed(backend: Backend, plain: bool) {
    let (worker, stats, address) = spawn(backend, plain);
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut quitters: Vec<TcpStream> = (0..MAX_CONNS - HOGS).map(|_| connect(address)).collect();
    let full = live_reaches(&stats, MAX_CONNS, PATIENCE);
    for (index, quitter) in quitters.iter_mut().enumerate() {
        if index % 2 == 0 {
            quitter.write_all(b"GET /never-finished HTTP/1.1\r\nHo").expect("part of a head");
        } else {
            let mut part = b"POST /never-finished HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n".to_vec();
            part.resize(part.len() + PART_OF_A_BODY, b'b');
            quitter.write_all(&part).expect("a head and part of its body");
        }
        in_process::wait_all_acknowledged(quitter);
        quitter.shutdown(Shutdown::Write).expect("FIN");
    }
    let back = places_back(worker, &stats, address, (hogs, &hurry));
    // What each read: the server's FIN, no answer (read once their places
    // were free, or the bound passed).
    let endings: Vec<String> = quitters.iter_mut().map(ending).collect();
    back.check(full, "sent part of a request and a FIN");
    assert!(endings.iter().all(|ending| ending == "closed"), "what the quitters read: {endings:?}");
}

/// Body bytes a quitter sends after its head: more than a read without a
/// ring buffer takes at once, so its input takes several.
const PART_OF_A_BODY: usize = 40 * 1024;

/// What a client reads before its connection ends: "closed" when nothing
/// (the server's FIN, no answer).
fn ending(client: &mut TcpStream) -> String {
    client.set_read_timeout(Some(PROMPTLY)).expect("read timeout");
    let mut byte = [0u8; 1];
    match client.read(&mut byte) {
        Ok(0) => "closed".to_string(),
        Ok(_) => "an answer".to_string(),
        Err(e) => e.to_string(),
    }
}

on_each_driver!(
    clients_that_send_part_of_a_request_and_a_fin_while_the_ring_is_empty_are_closed:
    clients_that_send_part_of_a_request_and_a_fin_while_the_ring_is_empty_are_closed_direct_descriptors,
    clients_that_send_part_of_a_request_and_a_fin_while_the_ring_is_empty_are_closed_plain_descriptors,
    clients_that_send_part_of_a_request_and_a_fin_beside_the_hogs_are_closed_on_epoll
);

/// A client that sends a whole request and half-closes while the hogs hold
/// the ring waits for its answer: its request is read without a ring
/// buffer, answered, and the connection closed after the answer (as a
/// receive would have it), while the hogs hold the ring still. Until
/// 2026-12-07 it was answered only once a buffer came back.
fn a_request_behind_a_half_close_while_the_ring_is_empty_is_answered(backend: Backend, plain: bool) {
    let (worker, _stats, address) = spawn(backend, plain);
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut client = connect(address);
    client.write_all(b"GET /half-closed HTTP/1.1\r\nHost: a\r\n\r\n").expect("request");
    in_process::wait_all_acknowledged(&client);
    client.shutdown(Shutdown::Write).expect("half-close");
    let read_all = AtomicBool::new(true);
    let started = Instant::now();
    client.set_read_timeout(Some(PROMPTLY)).expect("read timeout");
    let answer = read_answers(&mut client, 1, &read_all);
    let waited = started.elapsed();
    let after = ending(&mut client);
    // The hogs read a trickle all along: they held the ring throughout.
    finish_hogs(hogs, &hurry);
    worker.stop();
    assert_eq!(answer, Ok(vec![200]), "the half-closed client, while the hogs held the ring ({waited:?})");
    assert_eq!(after, "closed", "after its answer");
}

on_each_driver!(
    a_request_behind_a_half_close_while_the_ring_is_empty_is_answered:
    a_request_behind_a_half_close_while_the_ring_is_empty_is_answered_direct_descriptors,
    a_request_behind_a_half_close_while_the_ring_is_empty_is_answered_plain_descriptors,
    a_request_behind_a_half_close_beside_the_hogs_is_answered_on_epoll
);

/// Requests in a client's burst, each with a body: their input is more
/// than a read without a ring buffer takes at once, and the first answer
/// alone ([`ANSWER`]) fills the client's socket.
const BURST: usize = 3;
const BURST_BODY: usize = 10 * 1024;

/// A client that pipelines a burst of requests and half-closes while the
/// hogs hold the ring: read without a ring buffer, its connection pauses
/// behind the first answer, part of its input and the FIN still in its
/// socket (its client has hung up, and it waits for a buffer still), and
/// reads on without one once its client has taken that answer. Every
/// request is answered, then the connection closes and its place is free,
/// while the hogs hold the ring still.
fn a_burst_behind_a_half_close_while_the_ring_is_empty_is_answered_whole(backend: Backend, plain: bool) {
    let (worker, stats, address) = spawn(backend, plain);
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut client = connect(address);
    client.write_all(&posts(BURST, BURST_BODY)).expect("the burst");
    in_process::wait_all_acknowledged(&client);
    client.shutdown(Shutdown::Write).expect("half-close");
    let read_all = AtomicBool::new(true);
    let answers = read_answers(&mut client, BURST, &read_all);
    let after = ending(&mut client);
    let freed = live_reaches(&stats, HOGS, PROMPTLY);
    // The hogs read a trickle all along: they held the ring throughout.
    finish_hogs(hogs, &hurry);
    worker.stop();
    assert_eq!(answers, Ok(vec![200; BURST]), "the burst, while the hogs held the ring");
    assert_eq!(after, "closed", "after its answers");
    assert!(freed.is_ok(), "its connection was still open {PROMPTLY:?} after its answers: {freed:?} connections");
}

on_each_driver!(
    a_burst_behind_a_half_close_while_the_ring_is_empty_is_answered_whole:
    a_burst_behind_a_half_close_while_the_ring_is_empty_is_answered_whole_direct_descriptors,
    a_burst_behind_a_half_close_while_the_ring_is_empty_is_answered_whole_plain_descriptors,
    a_burst_behind_a_half_close_beside_the_hogs_is_answered_whole_on_epoll
);
