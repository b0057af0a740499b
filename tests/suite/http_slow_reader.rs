//! A client that pipelines far ahead and reads its answers slowly, while
//! the io_uring worker's ring is under pressure from clients that pipeline
//! and never read: it keeps its connection, and they are cut off.

use crate::util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use util::*;

/// What a slow reader saw: the answers it read, why it stopped early, and
/// when (from its start) the server's close reached it, if it did.
struct Outcome {
    answers: usize,
    cut: Option<String>,
    closed_at: Option<Duration>,
}

/// How a slow reader reads: `gulp` bytes at most every `period`, until it
/// has made `gulps_left` more gulps (counted from when it is set), then the
/// rest as fast as it comes.
struct Pace {
    gulp: usize,
    period: Duration,
    gulps_left: AtomicUsize,
}

/// A client that writes `requests` pipelined GETs at once and reads the
/// answers at `pace`; `started` once the first answer came.
fn slow_reader(
    addr: SocketAddr,
    requests: usize,
    pace: Arc<Pace>,
    started: Arc<AtomicBool>,
) -> thread::JoinHandle<Outcome> {
    thread::spawn(move || {
        let mut stream = connect(addr);
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        let mut writer = stream.try_clone().expect("a second handle");
        let batch = repeat(GET, requests);
        thread::spawn(move || {
            writer.set_write_timeout(None).expect("no write timeout");
            let _ = writer.write_all(&batch);
        });
        let marker = b"HTTP/1.1 200";
        let mut tail = Vec::new();
        let mut answers = 0;
        let mut chunk = vec![0u8; 1 << 16];
        let begun = Instant::now();
        let mut closed_at = None;
        while answers < requests {
            let left = pace.gulps_left.load(Ordering::Relaxed);
            let slow = left > 0;
            if slow {
                // The client's pace, not a wait for the server.
                thread::sleep(pace.period);
                if left != usize::MAX {
                    pace.gulps_left.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if closed_at.is_none() && hung_up(&stream) {
                closed_at = Some(begun.elapsed());
            }
            let len = if slow { pace.gulp } else { chunk.len() };
            match stream.read(&mut chunk[..len]) {
                Ok(0) => return Outcome { answers, cut: Some("end of stream".into()), closed_at },
                Ok(n) => {
                    started.store(true, Ordering::Relaxed);
                    tail.extend_from_slice(&chunk[..n]);
                    answers += tail.windows(marker.len()).filter(|w| *w == marker).count();
                    let from = tail.len().saturating_sub(marker.len() - 1);
                    tail.drain(..from);
                }
                Err(e) => return Outcome { answers, cut: Some(e.to_string()), closed_at },
            }
        }
        Outcome { answers, cut: None, closed_at }
    })
}

/// The server closed (or reset) `stream`: nothing of it is read here, which
/// would let its answers flow.
fn hung_up(stream: &TcpStream) -> bool {
    let mut fd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one pollfd, valid for the call; a zero timeout returns at once.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Two clients each write 4,000 pipelined GETs of a 4 KiB page (17 MB of
/// answers) and read 32 KiB every 100 ms; then 300 clients each write as
/// many GETs as their sockets take and never read, so that on io_uring the
/// paused connections hold half the ring and the non-readers are cut off.
/// The slow readers, whose connections hold input the ring read ahead as
/// well, keep theirs through it and get every answer once they read faster.
/// On epoll a paused connection reads nothing and nobody is cut off.
///
/// Until 2026-12-06 a holder was cut off once none of its sends had
/// completed for a second, and a send on a full socket completes only once
/// about a third of its send buffer (4 MiB here) is free: readers of
/// 1.25 MiB a second (64 KiB every 50 ms) were cut off, 1.8 MiB a second
/// kept. Now a suspect is kept while its unacknowledged bytes fall: 120 KiB
/// a second kept, 80 cut off (2026-12-06, `rr`, two runs each; on loopback
/// the client's kernel opens its window in steps of about 93 KiB).
fn slow_readers_keep_their_connections_while_non_readers_are_cut_off(mode: &str) {
    let body = "x".repeat(4096);
    let s = Server::start(&["--workers", "1", "--no-pin", "--mode", mode, "--body", &body]);
    let uring = s.stats()["backend"] == "uring";
    let requests = 4000;
    let (gulp, period) = (32 << 10, Duration::from_millis(100));
    let paces: Vec<_> =
        (0..2).map(|_| Arc::new(Pace { gulp, period, gulps_left: AtomicUsize::new(usize::MAX) })).collect();
    let started: Vec<_> = (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let readers: Vec<_> = paces
        .iter()
        .zip(&started)
        .map(|(pace, st)| slow_reader(s.addr(), requests, Arc::clone(pace), Arc::clone(st)))
        .collect();
    let answering = eventually(Duration::from_secs(10), || started.iter().all(|st| st.load(Ordering::Relaxed)));
    assert!(answering, "{mode}: the slow readers got their first answers");

    let chunk = repeat(GET, 2000);
    let mut non_readers: Vec<TcpStream> = (0..300)
        .map(|_| {
            // At the default buffers, 300 of them took 1.5 GiB of the
            // kernel's TCP memory, past `tcp_mem`'s pressure mark, and two
            // such tests at once past its limit, where the kernel resets
            // other tests' closing connections (`TCPAbortOnMemory`: the
            // router model test's, twice, 2026-12-06).
            let stream = connect_narrow(s.addr(), 16 << 10, Some(1400));
            stream.set_nonblocking(true).expect("non-blocking");
            stream
        })
        .collect();
    // More than their sockets take at once, in rounds: the ring reads ahead
    // of each connection's pause, and holds what it read (8 MiB, half the
    // ring, is 28 KiB each).
    for _ in 0..4 {
        for stream in &mut non_readers {
            let _ = stream.write(&chunk);
        }
    }
    if uring {
        // The pressure came and went its way: non-readers were cut off.
        let cut = eventually(Duration::from_secs(20), || non_readers.iter().any(hung_up));
        assert!(cut, "{mode}: no non-reader was cut off: the ring never came under pressure");
    }
    // 30 gulps more at the slow pace (3 s, past the patience twice over),
    // then fast: the rest of the answers, all of them if none was cut off.
    for pace in &paces {
        pace.gulps_left.store(30, Ordering::Relaxed);
    }
    for reader in readers {
        let outcome = reader.join().expect("a slow reader");
        assert!(
            outcome.cut.is_none() && outcome.answers == requests,
            "{mode}: a client reading {} KiB every {period:?} was cut off ({} of {requests} answers, {:?}; the server's close \
             reached it {:?} after it began)",
            gulp >> 10,
            outcome.answers,
            outcome.cut,
            outcome.closed_at
        );
    }
}

/// The connections handed over by the master: plain descriptors, asked
/// with an ioctl.
#[test]
fn rr_slow_readers_keep_their_connections_while_non_readers_are_cut_off() {
    slow_readers_keep_their_connections_while_non_readers_are_cut_off("rr");
}

/// The connections the ring accepts itself: on io_uring direct descriptors,
/// asked through the ring (`SOCKET_URING_OP_SIOCOUTQ`).
#[test]
fn shared_slow_readers_keep_their_connections_while_non_readers_are_cut_off() {
    slow_readers_keep_their_connections_while_non_readers_are_cut_off("shared");
}
