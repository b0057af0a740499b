//! The channel's wire format: fds cross intact, lines and wake-ups are told apart, nonsense is refused.

use std::os::fd::AsFd;

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
