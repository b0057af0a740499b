//! A thousand connections open at once, each doing several keep-alive requests.

use crate::util;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use util::*;

const CONNS: usize = 1000;
const THREADS: usize = 4;
const ROUNDS: usize = 5;

#[test]
fn thousand_concurrent_keepalive_connections() {
    let s = Server::start(&["--workers", "2"]);
    // Connections made before a worker is ready all go to the others.
    s.wait_workers_ready(2, Duration::from_secs(10));
    let addr = s.addr();
    let start = Instant::now();
    // All connections are opened before any request: the barrier is passed by
    // THREADS client threads plus this one.
    let opened = Arc::new(Barrier::new(THREADS + 1));
    let go = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (opened, go, done, release) = (opened.clone(), go.clone(), done.clone(), release.clone());
        handles.push(thread::spawn(move || -> Result<usize, String> {
            let per = CONNS / THREADS;
            let mut conns: Vec<BufReader<TcpStream>> = Vec::with_capacity(per);
            let mut err = None;
            for i in 0..per {
                match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                        s.set_nodelay(true).unwrap();
                        conns.push(BufReader::new(s));
                    }
                    Err(e) => {
                        err = Some(format!("thread {t}: connect #{i}: {e}"));
                        break;
                    }
                }
            }
            opened.wait();
            go.wait();
            // Run the rounds even after an error so the barriers are never left waiting.
            let mut ok = 0;
            if err.is_none() {
                'rounds: for round in 0..ROUNDS {
                    // Every connection sends, then every connection reads:
                    // all requests of a round are in flight together.
                    for (i, c) in conns.iter_mut().enumerate() {
                        if let Err(e) = c.get_mut().write_all(GET) {
                            err = Some(format!("thread {t} round {round} conn {i}: write: {e}"));
                            break 'rounds;
                        }
                    }
                    for (i, c) in conns.iter_mut().enumerate() {
                        match read_response(c) {
                            Ok(r) if r.status == 200 && r.body == BODY && !r.has_connection("close") => ok += 1,
                            Ok(r) => {
                                err = Some(format!("thread {t} round {round} conn {i}: bad response {r:?}"));
                                break 'rounds;
                            }
                            Err(e) => {
                                err = Some(format!("thread {t} round {round} conn {i}: read: {e}"));
                                break 'rounds;
                            }
                        }
                    }
                }
            }
            done.wait();
            release.wait(); // connections stay open until the main thread has read stats
            drop(conns);
            match err {
                Some(e) => Err(e),
                None => Ok(ok),
            }
        }));
    }
    opened.wait();
    let open_after = start.elapsed();
    // All 1000 are open; the server has taken them all before any request.
    let all_live = eventually(Duration::from_secs(10), || s.stats_totals().2 == CONNS as u64);
    let stats_open = s.stats();
    go.wait();
    // Results are checked after `done` so that no thread is left at a barrier;
    // the per-socket timeouts bound how long the threads can take to get there.
    done.wait();
    // Counters may trail the responses by a moment.
    eventually(Duration::from_secs(3), || s.stats_totals().1 >= (CONNS * ROUNDS) as u64);
    let stats_after = s.stats();
    release.wait();
    let mut total = 0;
    let mut errors = Vec::new();
    for h in handles {
        match h.join().expect("client thread panicked") {
            Ok(n) => total += n,
            Err(e) => errors.push(e),
        }
    }
    let took = start.elapsed();
    eprintln!("opened {CONNS} connections in {open_after:?}; all done in {took:?}");
    assert!(errors.is_empty(), "{} client errors, first: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert_eq!(total, CONNS * ROUNDS, "every request answered with 200");
    assert!(took < Duration::from_secs(40), "took too long: {took:?}");
    assert!(all_live, "the server never had all {CONNS} connections live at once: {stats_open}");

    let (accepted, requests, live) = stats_totals(&stats_after);
    assert_eq!(accepted, CONNS as u64, "accepted: {stats_after}");
    assert_eq!(requests, (CONNS * ROUNDS) as u64, "requests: {stats_after}");
    assert_eq!(live, CONNS as u64, "live while all still open: {stats_after}");
    // Both workers took part (rr hands connections out in turn).
    for w in stats_after["workers"].as_array().unwrap() {
        assert!(w["accepted"].as_u64().unwrap() > 0, "a worker took no connections: {stats_after}");
    }
    // Closed by the clients: live goes back to 0.
    let drained = eventually(Duration::from_secs(5), || s.stats_totals().2 == 0);
    assert!(drained, "live did not return to 0 after the clients closed: {}", s.stats());
    // Still serving.
    s.connect().get_ok();
}
