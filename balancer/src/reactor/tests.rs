//! The same behaviour from both reactors, on socketpairs and a TCP listener.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{channel_pair, recv_blocking, Message, Tag};

use super::*;

/// Token of the safety net: a poll that fires if a test waits 10 s in vain.
const GIVE_UP: Token = 999;

/// Both reactors, each with its safety net armed.
fn reactors() -> Vec<(Box<dyn Reactor>, GiveUp)> {
    let mut all: Vec<Box<dyn Reactor>> = vec![Box::new(epoll::EpollReactor::new().expect("epoll"))];
    match uring::UringReactor::new() {
        Ok(ring) => all.push(Box::new(ring)),
        Err(e) => eprintln!("io_uring unavailable here ({e}): testing epoll only"),
    }
    all.into_iter()
        .map(|mut reactor| {
            let give_up = GiveUp::arm(&mut *reactor);
            (reactor, give_up)
        })
        .collect()
}

/// Makes [`GIVE_UP`] complete 10 s from now unless dropped first, so that a
/// test never waits forever (a timeout would take the reactor's one timer).
struct GiveUp {
    _poll: UnixStream,
    _cancel: mpsc::Sender<()>,
}

impl GiveUp {
    fn arm(reactor: &mut dyn Reactor) -> GiveUp {
        let (poll, mut kick) = UnixStream::pair().expect("pair");
        reactor.poll_readable(poll.as_raw_fd(), GIVE_UP).expect("poll");
        let (cancel, cancelled) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if cancelled.recv_timeout(Duration::from_secs(10)) == Err(mpsc::RecvTimeoutError::Timeout) {
                let _ = kick.write_all(b"!");
            }
        });
        GiveUp { _poll: poll, _cancel: cancel }
    }
}

/// Waits until `token` completes; every completion seen on the way.
fn wait_for(reactor: &mut dyn Reactor, token: Token) -> Vec<Completion> {
    let mut seen = Vec::new();
    let mut out = Vec::with_capacity(64);
    loop {
        reactor.wait(&mut out).expect("wait");
        assert!(!out.iter().any(|c| c.token == GIVE_UP), "{reactor:?}: no completion for {token} in 10 s: {seen:?}");
        let done = out.iter().any(|c| c.token == token);
        seen.append(&mut out);
        if done {
            return seen;
        }
    }
}

/// One turn that surely completes: only a short timeout is due.
fn settle(reactor: &mut dyn Reactor) -> Vec<Completion> {
    reactor.timeout(Duration::from_millis(20), 7).expect("timeout");
    wait_for(reactor, 7)
}

fn result_of(seen: &[Completion], token: Token) -> i32 {
    seen.iter().find(|c| c.token == token).map(|c| c.result).expect("completed")
}

#[test]
fn a_receive_waits_for_data_then_completes_with_it() {
    for (mut reactor, _give_up) in reactors() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let mut buffer = [0u8; 16];
        // SAFETY: `buffer` lives until the completion is collected below.
        reactor.start(unsafe { Lent::recv(a.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) }, 1).expect("recv");
        let early = settle(&mut *reactor);
        assert!(!early.iter().any(|c| c.token == 1), "{reactor:?}: nothing to receive yet: {early:?}");
        b.write_all(b"ack").expect("write");
        let seen = wait_for(&mut *reactor, 1);
        assert_eq!(result_of(&seen, 1), 3, "{reactor:?}");
        assert_eq!(&buffer[..3], b"ack");
        drop(b);
        // SAFETY: as above.
        reactor.start(unsafe { Lent::recv(a.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) }, 2).expect("recv");
        assert_eq!(result_of(&wait_for(&mut *reactor, 2), 2), 0, "{reactor:?}: end of stream");
    }
}

#[test]
fn a_send_to_a_full_socket_completes_once_the_peer_reads() {
    for (mut reactor, _give_up) in reactors() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let chunk = [7u8; 4096];
        let mut queued = 0;
        while let Ok(n) = (&a).write(&chunk) {
            queued += n;
        }
        a.set_nonblocking(false).expect("blocking again");
        let message = b"last";
        // SAFETY: `message` is static.
        reactor.start(unsafe { Lent::send(a.as_raw_fd(), message.as_ptr(), message.len()) }, 1).expect("send");
        let early = settle(&mut *reactor);
        assert!(!early.iter().any(|c| c.token == 1), "{reactor:?}: the socket is full: {early:?}");
        let mut drained = vec![0u8; queued];
        b.read_exact(&mut drained).expect("drain");
        assert_eq!(result_of(&wait_for(&mut *reactor, 1), 1), 4, "{reactor:?}");
        let mut last = [0u8; 4];
        b.read_exact(&mut last).expect("read");
        assert_eq!(&last, message);
    }
}

#[test]
fn a_message_carries_fds_to_the_worker() {
    for (mut reactor, _give_up) in reactors() {
        let (master, worker) = channel_pair().expect("channel");
        let (x, _y) = UnixStream::pair().expect("payload");
        let mut message = Message::new();
        let header = message.prepare_send(Tag::Connections, &[x.as_raw_fd()]);
        // SAFETY: `message` lives until the completion is collected.
        reactor.start(unsafe { Lent::send_msg(master.as_raw_fd(), header) }, 1).expect("sendmsg");
        assert_eq!(result_of(&wait_for(&mut *reactor, 1), 1), 3, "{reactor:?}: the tag and the count");
        let mut inbox = Message::new();
        let mut fds = Vec::new();
        let received = recv_blocking(worker.as_fd(), &mut inbox, &mut |fd| fds.push(fd)).expect("recv");
        assert_eq!(received.map(|r| r.fds), Some(1), "{reactor:?}");
    }
}

#[test]
fn a_multishot_accept_yields_each_connection_until_cancelled() {
    for (mut reactor, _give_up) in reactors() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        reactor.accept(listener.as_raw_fd(), 1).expect("accept");
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        let mut accepted = Vec::new();
        while accepted.len() < 3 {
            for c in wait_for(&mut *reactor, 1).into_iter().filter(|c| c.token == 1) {
                assert!(c.more, "{reactor:?}: {c:?}");
                let connection = c.accepted.expect("a connection");
                assert_eq!(connection.as_raw_fd(), c.result);
                accepted.push(connection);
            }
        }
        assert_eq!(accepted.len(), 3, "{reactor:?}");
        reactor.cancel(1).expect("cancel");
        let end = wait_for(&mut *reactor, 1);
        let last = end.iter().rfind(|c| c.token == 1).expect("the accept ends");
        assert_eq!((last.result, last.more), (-libc::ECANCELED, false), "{reactor:?}");
        drop(clients);
    }
}

#[test]
fn a_cancelled_receive_completes_with_ecanceled() {
    for (mut reactor, _give_up) in reactors() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let mut buffer = [0u8; 8];
        // SAFETY: `buffer` lives until the cancellation is collected.
        reactor.start(unsafe { Lent::recv(a.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) }, 1).expect("recv");
        settle(&mut *reactor);
        reactor.cancel(1).expect("cancel");
        assert_eq!(result_of(&wait_for(&mut *reactor, 1), 1), -libc::ECANCELED, "{reactor:?}");
    }
}

#[test]
fn readable_completes_at_each_readiness_and_goes_on() {
    for (mut reactor, _give_up) in reactors() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        reactor.poll_readable(a.as_raw_fd(), 1).expect("poll");
        for round in 0..2 {
            b.write_all(b"x").expect("write");
            let seen = wait_for(&mut *reactor, 1);
            let c = seen.iter().find(|c| c.token == 1).expect("readable");
            assert!(c.more, "{reactor:?}: round {round}: {c:?}");
            let mut byte = [0u8; 1];
            (&a).read_exact(&mut byte).expect("read");
        }
    }
}

#[test]
fn a_timeout_does_not_fire_early() {
    for (mut reactor, _give_up) in reactors() {
        let started = Instant::now();
        reactor.timeout(Duration::from_millis(50), 1).expect("timeout");
        let mut out = Vec::with_capacity(8);
        reactor.wait(&mut out).expect("wait");
        assert_eq!(out.iter().map(|c| c.token).collect::<Vec<_>>(), [1], "{reactor:?}");
        assert!(started.elapsed() >= Duration::from_millis(50), "{reactor:?}");
    }
}

#[test]
fn closing_through_the_reactor_closes_and_a_reused_fd_number_still_works() {
    for (mut reactor, _give_up) in reactors() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let mut buffer = [0u8; 8];
        // SAFETY: `buffer` lives until the completion is collected.
        reactor.start(unsafe { Lent::recv(a.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) }, 1).expect("recv");
        b.write_all(b"1").expect("write");
        wait_for(&mut *reactor, 1);
        // Another socket takes the number behind the reactor's back (dup2
        // closes the first one atomically, so no other thread can take it).
        let (c, mut d) = UnixStream::pair().expect("pair");
        // SAFETY: dup2 onto a number this test owns (`a`'s); `a` now owns the new socket.
        assert!(unsafe { libc::dup2(c.as_raw_fd(), a.as_raw_fd()) } >= 0);
        drop(c);
        let c = a;
        // SAFETY: as above.
        reactor.start(unsafe { Lent::recv(c.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) }, 2).expect("recv");
        settle(&mut *reactor);
        d.write_all(b"22").expect("write");
        assert_eq!(result_of(&wait_for(&mut *reactor, 2), 2), 2, "{reactor:?}");
        reactor.close(OwnedFd::from(c)).expect("close");
        settle(&mut *reactor);
        let mut rest = Vec::new();
        d.read_to_end(&mut rest).expect("end of stream once closed");
        drop(b);
    }
}

#[test]
fn a_multishot_receive_delivers_each_message_until_the_end() {
    for (mut reactor, _give_up) in reactors() {
        let (master, worker) = channel_pair().expect("channel");
        reactor.recv_multi(master.as_raw_fd(), 1).expect("recv_multi");
        for message in [&b"A1"[..], b"A22", b"A333"] {
            nix::sys::socket::send(worker.as_raw_fd(), message, nix::sys::socket::MsgFlags::empty()).expect("send");
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            for c in wait_for(&mut *reactor, 1).into_iter().filter(|c| c.token == 1) {
                assert!(c.more, "{reactor:?}: {c:?}");
                assert_eq!(c.result as usize, c.message.as_slice().len(), "{reactor:?}");
                got.push(c.message.as_slice().to_vec());
            }
        }
        assert_eq!(got, [&b"A1"[..], b"A22", b"A333"], "{reactor:?}: one completion per message, in order");
        drop(worker);
        let end = wait_for(&mut *reactor, 1);
        let last = end.iter().rfind(|c| c.token == 1).expect("the end");
        assert_eq!((last.result, last.more), (0, false), "{reactor:?}: end of stream ends it");
        // A second one, cancelled.
        let (master, _worker) = channel_pair().expect("channel");
        reactor.recv_multi(master.as_raw_fd(), 2).expect("recv_multi");
        settle(&mut *reactor);
        reactor.cancel(2).expect("cancel");
        let end = wait_for(&mut *reactor, 2);
        let last = end.iter().rfind(|c| c.token == 2).expect("cancelled");
        assert_eq!((last.result, last.more), (-libc::ECANCELED, false), "{reactor:?}");
    }
}

#[test]
fn an_accept_takes_connections_that_queued_before_it_was_armed() {
    for (mut reactor, _give_up) in reactors() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        reactor.accept(listener.as_raw_fd(), 1).expect("accept");
        let mut accepted = 0;
        while accepted < 2 {
            accepted += wait_for(&mut *reactor, 1).iter().filter(|c| c.token == 1 && c.accepted.is_some()).count();
        }
        assert_eq!(accepted, 2, "{reactor:?}");
        drop(clients);
    }
}

#[test]
fn a_cancelled_accept_loses_no_connection() {
    for (mut reactor, _give_up) in reactors() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        // Cancelled in the turn it starts: what it took before comes out,
        // the rest stays queued for the next accept.
        reactor.accept(listener.as_raw_fd(), 1).expect("accept");
        reactor.cancel(1).expect("cancel");
        let end = wait_for(&mut *reactor, 1);
        let mut accepted = end.iter().filter(|c| c.token == 1 && c.accepted.is_some()).count();
        let last = end.iter().rfind(|c| c.token == 1).expect("the accept ends");
        if last.more {
            let rest = wait_for_end(&mut *reactor, 1);
            accepted += rest.iter().filter(|c| c.token == 1 && c.accepted.is_some()).count();
        }
        reactor.accept(listener.as_raw_fd(), 2).expect("accept again");
        while accepted < 3 {
            accepted += wait_for(&mut *reactor, 2).iter().filter(|c| c.token == 2 && c.accepted.is_some()).count();
        }
        assert_eq!(accepted, 3, "{reactor:?}");
        drop(clients);
    }
}

/// Waits until the multishot op `token` ends (a completion without `more`).
fn wait_for_end(reactor: &mut dyn Reactor, token: Token) -> Vec<Completion> {
    let mut seen = Vec::new();
    loop {
        let mut turn = wait_for(reactor, token);
        let ended = turn.iter().any(|c| c.token == token && !c.more);
        seen.append(&mut turn);
        if ended {
            return seen;
        }
    }
}
