//! What only the epoll reactor does: what it asks the kernel to watch.

use std::net::TcpListener;
use std::time::Instant;

use super::*;

/// The fds the kernel has in this epoll instance (`tfd:` lines of its fdinfo).
fn watched(reactor: &EpollReactor) -> Vec<RawFd> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", reactor.epoll.as_raw_fd())).expect("fdinfo");
    info.lines()
        .filter_map(|line| line.strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn a_cancelled_accept_stops_watching_the_listener() {
    let mut reactor = EpollReactor::new().expect("epoll");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut out = Vec::with_capacity(8);
    reactor.accept(listener.as_raw_fd(), 1).expect("accept");
    reactor.timeout(Duration::from_millis(1), 2).expect("timeout");
    reactor.wait(&mut out).expect("wait");
    assert!(watched(&reactor).contains(&listener.as_raw_fd()), "the accept waits on the listener");
    reactor.cancel(1).expect("cancel");
    reactor.wait(&mut out).expect("wait");
    assert_eq!(out.iter().map(|c| (c.token, c.result)).collect::<Vec<_>>(), [(1, -libc::ECANCELED)]);
    assert!(
        !watched(&reactor).contains(&listener.as_raw_fd()),
        "a listener shared with the workers must not wake a master that does not accept"
    );
}

#[test]
fn a_tcp_listeners_queue_is_counted_and_a_unix_one_is_not() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    assert_eq!(sys::accept_queue_len(listener.as_raw_fd()), Some(0));
    let clients: Vec<std::net::TcpStream> =
        (0..3).map(|_| std::net::TcpStream::connect(addr).expect("connect")).collect();
    // Loopback queues the connection as the handshake ends; give it a moment.
    let give_up = Instant::now() + Duration::from_secs(2);
    while sys::accept_queue_len(listener.as_raw_fd()) != Some(3) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sys::accept_queue_len(listener.as_raw_fd()), Some(3));
    let connected = std::net::TcpStream::connect(addr).expect("connect");
    assert_eq!(sys::accept_queue_len(connected.as_raw_fd()), None, "not a listener");
    let dir = std::env::temp_dir().join(format!("ringmaster-epoll-count-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let unix = std::os::unix::net::UnixListener::bind(&dir).expect("bind unix");
    assert_eq!(sys::accept_queue_len(unix.as_raw_fd()), None, "not TCP");
    let _ = std::fs::remove_file(&dir);
    drop(clients);
}

#[test]
fn a_counted_accept_takes_connections_that_come_in_waves() {
    let mut reactor = EpollReactor::new().expect("epoll");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    reactor.accept(listener.as_raw_fd(), 1).expect("accept");
    let mut out = Vec::with_capacity(64);
    let mut clients = Vec::new();
    let mut accepted = 0;
    // A timeout at a time, so that a lost event fails the test, not hangs it.
    let mut timing = false;
    for wave in 1..=4 {
        clients.extend((0..wave).map(|_| std::net::TcpStream::connect(addr).expect("connect")));
        // The accept counts the queue and takes only that many: each
        // connection that comes later must still raise an event.
        let give_up = Instant::now() + Duration::from_secs(5);
        while accepted < clients.len() {
            assert!(Instant::now() < give_up, "wave {wave}: {accepted} of {} accepted", clients.len());
            if !timing {
                reactor.timeout(Duration::from_millis(50), 2).expect("timeout");
                timing = true;
            }
            reactor.wait(&mut out).expect("wait");
            for c in out.drain(..) {
                if c.token == 2 {
                    timing = false;
                    continue;
                }
                assert!(c.token == 1 && c.more && c.accepted.is_some(), "{c:?}");
                accepted += 1;
            }
        }
    }
    assert_eq!(accepted, 10);
    assert!(sys::accept_queue_len(listener.as_raw_fd()) == Some(0));
}
