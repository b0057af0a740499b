//! On io_uring, clients that close while every receive buffer of the ring
//! is held by paused connections (`starved_hogs`): their receives wait for
//! a buffer, and the kernel reports a FIN or a reset to a receive only with
//! one. Until 2026-12-07 such a client kept its descriptor and its place
//! under `--max-conns` for as long as the ring stayed empty, past its
//! header timeout (a starved connection's timers start over: its wait is
//! the worker's), and a full worker took no newcomer meanwhile (its accepts
//! wait for free places; in `rr` and `least` the master sees it full). Its
//! reset watch now sees the close (`engine/src/driver/uring/starved.rs`):
//! a reset ends the connection, and a FIN with nothing left unread is taken
//! as its receive would take it, once a buffer came back.
//!
//! A FIN behind unread input still waits for a buffer: that input may be a
//! whole request from a client that half-closed to wait for its answer,
//! which it gets once the hogs read.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmaster_engine::{Backend, EngineConfig, FixedBody, Handler, Request, Response, StatsBlock};

mod in_process;
mod starved_hogs;

use starved_hogs::{config, connect, finish_hogs, read_answers, start_hogs, ANSWER, HOGS, PATIENCE};

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
    let freed = live_reaches(&stats, HOGS, PROMPTLY);
    // Newcomers take the places (a full worker arms no accept, and they
    // would wait in the listen queue).
    let newcomers: Vec<TcpStream> = (0..MAX_CONNS - HOGS).map(|_| connect(address)).collect();
    let taken = live_reaches(&stats, MAX_CONNS, PROMPTLY);
    finish_hogs(hogs, &hurry);
    drop(newcomers);
    worker.stop();
    assert!(full.is_ok(), "the worker never held the hogs and the quitters: {full:?} connections");
    if let Err(live) = freed {
        panic!(
            "{} clients quit while the hogs held the ring, and {} connections of {} were still open {PROMPTLY:?} after",
            MAX_CONNS - HOGS,
            live - HOGS as u64,
            MAX_CONNS - HOGS
        );
    }
    assert!(taken.is_ok(), "newcomers were not taken into the places freed: {taken:?} connections");
}

#[test]
fn clients_that_quit_while_the_ring_is_empty_give_their_places_back_direct_descriptors() {
    clients_that_quit_while_the_ring_is_empty_give_their_places_back(Backend::Uring, false);
}

#[test]
fn clients_that_quit_while_the_ring_is_empty_give_their_places_back_plain_descriptors() {
    clients_that_quit_while_the_ring_is_empty_give_their_places_back(Backend::Uring, true);
}

/// On epoll no ring runs out (each connection reads into the worker's one
/// receive buffer, and what it keeps goes to its own carry): the same
/// clients' places are free at once there too.
#[test]
fn clients_that_quit_beside_the_hogs_give_their_places_back_on_epoll() {
    clients_that_quit_while_the_ring_is_empty_give_their_places_back(Backend::Epoll, true);
}

/// A client that sends a whole request and half-closes while the hogs hold
/// the ring waits for its answer: its FIN comes behind unread input, and
/// is not taken for a client gone. It is answered once the hogs read.
#[test]
fn a_request_behind_a_half_close_while_the_ring_is_empty_is_answered() {
    let (worker, _stats, address) = spawn(Backend::Uring, false);
    let hurry = Arc::new(AtomicBool::new(false));
    let hogs = start_hogs(address, HOGS, &hurry);
    let mut client = connect(address);
    client.write_all(b"GET /half-closed HTTP/1.1\r\nHost: a\r\n\r\n").expect("request");
    client.shutdown(Shutdown::Write).expect("half-close");
    in_process::wait_all_acknowledged(&client);
    // Ticks for the worker to see the FIN, and (what would be wrong) close.
    client.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    let mut byte = [0u8; 1];
    let early = client.read(&mut byte);
    client.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    finish_hogs(hogs, &hurry);
    let answer = read_answers(&mut client, 1, &hurry);
    worker.stop();
    assert!(early.is_err(), "before the hogs read, the half-closed client read {early:?}");
    assert_eq!(answer, Ok(vec![200]), "the half-closed client, once the hogs read");
}
