//! The channel's wire format: fds cross intact, lines and wake-ups are told apart, nonsense is refused.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::*;

#[test]
fn fds_cross_the_channel_intact() {
    let (master, worker) = channel_pair().expect("socketpair");
    let (a, b) = channel_pair().expect("payload pair");
    let mut out = Message::new();
    send_blocking(master.as_fd(), &mut out, Tag::Connections, &[a.as_raw_fd(), b.as_raw_fd()]).expect("send");
    let mut received = Vec::new();
    let mut inbox = Message::new();
    let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |fd| received.push(fd)).expect("recv");
    assert_eq!(got, Some(Received { tag: Some(Tag::Connections), sent: 2, fds: 2, truncated: false, text_len: 0 }));
    // The received fds are the same sockets: a byte written on `a` arrives on the copy of `b`.
    // SAFETY: writing one byte from a valid buffer to a valid socket.
    let wrote = unsafe { libc::write(received[0].as_raw_fd(), b"x".as_ptr().cast(), 1) };
    assert_eq!(wrote, 1);
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a valid buffer from a valid socket.
    let read = unsafe { libc::read(b.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
    assert_eq!((read, byte[0]), (1, b'x'));
}

#[test]
fn acks_hold_at_most_max_acks_batches() {
    let mut acks = Acks::new();
    assert!(acks.is_empty());
    for i in 0..MAX_ACKS {
        assert!(acks.push(Ack { received: i as u16, adopted: 0 }));
    }
    assert!(!acks.push(Ack::default()), "full: publish them first");
    assert_eq!(acks.as_slice().len(), MAX_ACKS);
    assert_eq!(acks.as_slice()[MAX_ACKS - 1].received, MAX_ACKS as u16 - 1);
    acks.clear();
    assert!(acks.is_empty());
}

#[test]
fn a_full_batch_fits_and_drain_has_no_fds() {
    let (master, worker) = channel_pair().expect("socketpair");
    let (a, _b) = channel_pair().expect("payload pair");
    let fds = vec![a.as_raw_fd(); MAX_FDS];
    let mut out = Message::new();
    send_blocking(master.as_fd(), &mut out, Tag::Connections, &fds).expect("send full batch");
    send_blocking(master.as_fd(), &mut out, Tag::Drain, &[]).expect("send drain");
    let mut inbox = Message::new();
    let mut count = 0;
    let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| count += 1).expect("recv batch");
    assert_eq!(got.map(|r| (r.fds, r.truncated)), Some((MAX_FDS, false)));
    assert_eq!(count, MAX_FDS);
    let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| count += 1).expect("recv drain");
    assert_eq!(got, Some(Received { tag: Some(Tag::Drain), sent: 0, fds: 0, truncated: false, text_len: 0 }));
    drop(master);
    assert_eq!(recv_blocking(worker.as_fd(), &mut inbox, &mut |_| {}).expect("eof"), None);
}

#[test]
fn text_crosses_both_ways_and_is_cut_at_the_limit() {
    let (master, worker) = channel_pair().expect("socketpair");
    let mut out = Message::new();
    let header = out.prepare_send_text(b"hello workers");
    // SAFETY: `header` points into `out`, alive and unmoved for the call.
    assert!(unsafe { libc::sendmsg(master.as_raw_fd(), header, 0) } > 0);
    let mut inbox = Message::new();
    let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| panic!("no fds")).expect("recv").expect("msg");
    assert_eq!(got.tag, Some(Tag::Text));
    assert_eq!(inbox.text(&got), b"hello workers");

    let long = vec![b'x'; MAX_TEXT + 10];
    let header = out.prepare_send_text(&long);
    // SAFETY: as above.
    assert!(unsafe { libc::sendmsg(master.as_raw_fd(), header, 0) } > 0);
    let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |_| panic!("no fds")).expect("recv").expect("msg");
    assert_eq!(inbox.text(&got), &long[..MAX_TEXT]);

    send_text(worker.as_fd(), b"hello master").expect("send");
    let mut buf = [0u8; WORKER_MESSAGE_MAX];
    // SAFETY: receiving into a live local buffer of its own length.
    let n = unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(decode_text(&buf[..n as usize]), Some(&b"hello master"[..]));
    send_text(worker.as_fd(), &long).expect("send");
    // SAFETY: as above.
    let n = unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(decode_text(&buf[..n as usize]), Some(&long[..MAX_WORKER_TEXT]));
    assert_eq!(decode_text(b"A\x01\x00\x01\x00"), None);
    send_wake(worker.as_fd()).expect("send");
    // SAFETY: as above.
    let n = unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(decode_text(&buf[..n as usize]), None, "a wake-up is no line of text");
}

#[test]
fn a_worker_never_waits_on_a_master_that_does_not_read() {
    // A stopped master reads nothing: the worker's lines fill the channel,
    // and the worker's loop, which sends them, must not stop there. Run on a
    // thread so that a send that waits fails the test instead of hanging it.
    let (master, worker) = channel_pair().expect("socketpair");
    let (done, finished) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let mut sent = 0usize;
        let full = loop {
            match send_text(worker.as_fd(), b"served 1000") {
                Ok(()) => sent += 1,
                Err(error) => break error,
            }
            assert!(sent < 1_000_000, "the channel never filled");
        };
        // The master asked for a wake-up: its full channel wakes it anyway.
        let wake = send_wake(worker.as_fd());
        let _ = done.send((sent, full.kind(), wake.map_err(|e| e.kind())));
        worker
    });
    let (sent, full, wake) =
        finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a send waited for the master to read");
    assert!(sent > 0);
    assert_eq!(full, io::ErrorKind::WouldBlock);
    assert_eq!(wake, Ok(()));
    let worker = sender.join().expect("sender");
    // Once the master reads one, the next line goes.
    let mut buf = [0u8; WORKER_MESSAGE_MAX];
    // SAFETY: receiving into a live local buffer of its own length.
    assert!(unsafe { libc::recv(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0);
    send_text(worker.as_fd(), b"served 2000").expect("room again");
}

/// Sends `payload` with `fd` attached, by hand: a message the master never
/// sends, as a peer that broke the wire format would.
fn send_raw(channel: BorrowedFd<'_>, payload: &[u8], fd: BorrowedFd<'_>) {
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call,
    // and the one cmsg written lies inside `control` (8-aligned, CONTROL_LEN long).
    let sent = unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.0.as_mut_ptr().cast();
        header.msg_controllen = libc::CMSG_SPACE(FD_SIZE as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(FD_SIZE as u32) as usize;
        std::ptr::copy_nonoverlapping((&fd.as_raw_fd() as *const RawFd).cast::<u8>(), libc::CMSG_DATA(cmsg), FD_SIZE);
        libc::sendmsg(channel.as_raw_fd(), &header, libc::MSG_NOSIGNAL)
    };
    assert_eq!(sent, payload.len() as isize, "sendmsg: {}", io::Error::last_os_error());
}

/// True once `fd`'s peer has closed its end (every copy of it).
fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: reading at most one byte into a live local buffer, without waiting.
    let n = unsafe { libc::recv(fd.as_raw_fd(), byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
    n == 0
}

/// A message of no bytes that carries an fd is a message, not the end of
/// the stream: `recv_blocking` took it for the master gone (`None`) and the
/// fd the kernel had installed was owned by nothing, open for good. An fd on
/// a message that is no batch is nobody's connection: it is closed at once.
#[test]
fn fds_on_a_message_of_no_bytes_or_no_batch_are_closed_not_leaked() {
    let (master, worker) = channel_pair().expect("socketpair");
    let mut inbox = Message::new();
    for payload in [&b""[..], b"C", b"D\0\0", b"?"] {
        let (sent, peer) = channel_pair().expect("payload pair");
        send_raw(master.as_fd(), payload, sent.as_fd());
        drop(sent);
        let mut taken = Vec::new();
        let got = recv_blocking(worker.as_fd(), &mut inbox, &mut |fd| taken.push(fd)).expect("recv");
        let got = got.unwrap_or_else(|| panic!("{payload:?} with an fd taken for the end of the stream"));
        assert!(!got.truncated, "{payload:?}: {got:?}");
        if payload == b"C" {
            // A batch whose count did not arrive: what came is taken, and acked as arrived.
            assert_eq!((got.tag, got.fds, taken.len()), (Some(Tag::Connections), 1, 1), "{payload:?}");
            drop(taken);
        } else {
            assert_eq!((got.fds, taken.len()), (0, 0), "{payload:?}: no connection in {got:?}");
        }
        assert!(peer_closed(peer.as_fd()), "{payload:?}: the fd it carried is still open in the receiver");
    }
    drop(master);
    assert_eq!(recv_blocking(worker.as_fd(), &mut inbox, &mut |_| {}).expect("eof"), None, "the end of the stream");
}

static HANDLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Interrupts thread `tid` of this process with `SIGWINCH` (handled, without
/// `SA_RESTART`, as a program's own handler may be) `times` times, each time
/// once it sleeps in a call, then returns (at once if the thread ends).
fn interrupt_while_blocked(tid: libc::pid_t, times: usize) {
    // SAFETY: a handler that only touches an atomic is async-signal-safe; all-zero
    // is a valid sigaction to fill; no SA_RESTART, so a blocking call fails EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGWINCH, &action, std::ptr::null_mut()), 0);
    }
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for _ in 0..times {
        while state() != Some('S') {
            if state().is_none() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "thread {tid} never blocked ({:?})", state());
            std::thread::yield_now();
        }
        let before = HANDLED.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: tgkill only sends a signal to a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGWINCH) };
        while HANDLED.load(std::sync::atomic::Ordering::Relaxed) == before {
            assert!(std::time::Instant::now() < deadline, "the signal was never handled");
            std::thread::yield_now();
        }
    }
}

/// A signal handled while `recv_blocking` or `send_blocking` waits (a
/// program's own handler, installed without `SA_RESTART`) does not fail the
/// call: it failed with `EINTR` (`Interrupted`), which the caller took for a
/// broken channel.
#[test]
fn blocking_sends_and_receives_go_on_through_signals() {
    let (master, worker) = channel_pair().expect("socketpair");
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        let mut inbox = Message::new();
        recv_blocking(worker.as_fd(), &mut inbox, &mut drop::<OwnedFd>).map(|r| r.map(|r| r.tag))
    });
    let tid = tid_rx.recv().expect("the receiver's tid");
    interrupt_while_blocked(tid, 20);
    let mut out = Message::new();
    // (Fails with EPIPE if the receive ended early: the join says how.)
    let _ = send_blocking(master.as_fd(), &mut out, Tag::Drain, &[]);
    let got = receiver.join().expect("receiver");
    assert_eq!(got.map_err(|e| e.kind()), Ok(Some(Some(Tag::Drain))), "the receive went on through 20 signals");

    // Fill the channel, then a send waits for room through the signals.
    let (master, worker) = channel_pair().expect("socketpair");
    let mut out = Message::new();
    loop {
        let header = out.prepare_send(Tag::Drain, &[]);
        // SAFETY: `header` points into `out`, alive for the call.
        if unsafe { libc::sendmsg(master.as_raw_fd(), header, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) } < 0 {
            assert_eq!(io::Error::last_os_error().kind(), io::ErrorKind::WouldBlock);
            break;
        }
    }
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        send_blocking(master.as_fd(), &mut Message::new(), Tag::Drain, &[])
    });
    let tid = tid_rx.recv().expect("the sender's tid");
    interrupt_while_blocked(tid, 20);
    let mut inbox = Message::new();
    while !sender.is_finished() {
        match recv_nonblocking(worker.as_fd(), &mut inbox) {
            Ok(Some(_)) => {}
            Ok(None) => std::thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(sender.join().expect("sender").map_err(|e| e.kind()), Ok(()), "the send went on through 20 signals");
}
