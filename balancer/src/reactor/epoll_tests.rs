//! What only the epoll reactor does: what it asks the kernel to watch.

use std::net::TcpListener;

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
