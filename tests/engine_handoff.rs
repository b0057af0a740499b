//! A handed-over connection is closed by the worker that serves it, even
//! while the master still holds its copy: the master keeps each fd until it
//! has read the worker's ack, and under load that comes a batch after the
//! worker has answered and closed. The worker sends its FIN itself, so a
//! client that reads to the end of the stream (`Connection: close`) sees it
//! at once, and the TCP close does not wait for, or run in, the master.
//!
//! The test plays the master and never lets go of its copy until the client
//! has read the end of the stream: without the worker's own FIN, the read
//! waits for the copy and times out.
//!
//! And a handed descriptor the worker cannot take in is declined (the master
//! routes it elsewhere), not the end of the worker.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ringmaster_engine::channel::{channel_pair, send_blocking, Message, Tag};
use ringmaster_engine::{Backend, EngineConfig, FixedBody};

mod in_process;
use in_process::{Feed, InProcessWorker};

const BODY: &[u8] = b"hello world\n";
/// How long the client waits for the end of the stream: far more than a
/// worker on a busy machine takes to answer, far less than the copy is held.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker on its own thread, fed by the test over `channel`.
fn start_worker(backend: Backend, channel: OwnedFd) -> InProcessWorker {
    InProcessWorker::spawn(move |shutdown| {
        let config = EngineConfig { backend, max_conns: 16, recv_buffers: 16, ..EngineConfig::default() };
        in_process::serve(&config, Feed::Channel(channel), shutdown, &mut FixedBody::new(BODY))
    })
}

/// Hands a connection to the worker and keeps the master's copy while the
/// client reads to the end of the stream; the worker's close must end it.
fn worker_closes_what_the_master_still_holds(backend: Backend) {
    let (master_end, worker_end) = channel_pair().expect("channel");
    let worker = start_worker(backend, worker_end);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut client, copy) = hand_over(&master_end, &listener, &mut Message::new());
    client.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("request");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = client.read_to_end(&mut answer);
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    match read {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
            "no end of stream after {waited:?} while the master held its copy: the worker's close sent no FIN \
             (read so far: {text:?})"
        ),
        Err(e) => panic!("reading the answer: {e} (read so far: {text:?})"),
    }
    assert!(text.starts_with("HTTP/1.1 200"), "answer: {text:?}");
    assert!(text.ends_with("hello world\n"), "answer: {text:?}");
    // The master's copy goes only now, and the master with it.
    drop(copy);
    drop(master_end);
    worker.stop();
}

#[test]
fn uring_worker_closes_what_the_master_still_holds() {
    worker_closes_what_the_master_still_holds(Backend::Uring);
}

#[test]
fn epoll_worker_closes_what_the_master_still_holds() {
    worker_closes_what_the_master_still_holds(Backend::Epoll);
}

/// One keep-alive request on `client`, and its whole answer.
fn ask(client: &mut TcpStream) -> String {
    client.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.ends_with(BODY) {
        match client.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the answer: {e} (read so far: {:?})", String::from_utf8_lossy(&answer)),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A connection the master hands over, as it does: the client's end, and
/// the master's copy (kept, as the master keeps it until the ack).
fn hand_over(master_end: &OwnedFd, listener: &TcpListener, message: &mut Message) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().expect("local addr")).expect("connect");
    client.set_read_timeout(Some(READ_TIMEOUT)).expect("read timeout");
    let (copy, _) = listener.accept().expect("accept");
    send_blocking(master_end.as_fd(), message, Tag::Connections, &[copy.as_raw_fd()]).expect("hand over");
    (client, copy)
}

/// A handed descriptor the worker cannot watch is declined, and the worker
/// serves on, with the connections it holds. Before, a failed watch on epoll
/// (`ENOMEM`, or `ENOSPC` at the user's watch limit; `EPERM` here, for a
/// file, which cannot be polled) ended the worker and every connection in it.
fn a_descriptor_the_worker_cannot_watch_is_declined(backend: Backend) {
    let file = std::fs::File::open(std::env::current_exe().expect("test binary")).expect("open a file");
    serves_on_after(
        backend,
        |master_end, message| {
            send_blocking(master_end.as_fd(), message, Tag::Connections, &[file.as_raw_fd()]).expect("hand over")
        },
        || {},
    );
}

/// A worker serving a handed connection is sent what `broken` sends; a
/// connection handed after it is served, and the first is served on; then
/// `check` runs, the worker still running.
fn serves_on_after(backend: Backend, broken: impl FnOnce(&OwnedFd, &mut Message), check: impl FnOnce()) {
    let (master_end, worker_end) = channel_pair().expect("channel");
    let worker = start_worker(backend, worker_end);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut message = Message::new();
    let (mut first, _first_copy) = hand_over(&master_end, &listener, &mut message);
    assert!(ask(&mut first).starts_with("HTTP/1.1 200"), "the first connection is served");

    broken(&master_end, &mut message);

    let (mut second, _second_copy) = hand_over(&master_end, &listener, &mut message);
    assert!(ask(&mut second).starts_with("HTTP/1.1 200"), "a connection handed after it is served");
    assert!(ask(&mut first).starts_with("HTTP/1.1 200"), "the connection held before it is served on");
    check();
    drop(master_end);
    worker.stop();
}

#[test]
fn uring_worker_declines_a_descriptor_it_cannot_watch() {
    a_descriptor_the_worker_cannot_watch_is_declined(Backend::Uring);
}

#[test]
fn epoll_worker_declines_a_descriptor_it_cannot_watch() {
    a_descriptor_the_worker_cannot_watch_is_declined(Backend::Epoll);
}

/// Sends a message of no bytes with `fd` attached, as no master does (a
/// broken sender): the kernel delivers it, and `recvmsg` returns 0 for it.
fn send_no_bytes_with(channel: &OwnedFd, fd: std::os::fd::BorrowedFd<'_>) {
    const SPACE: usize = 24;
    #[repr(C, align(8))]
    struct Control([u8; SPACE]);
    let mut control = Control([0; SPACE]);
    let mut iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call,
    // and the one cmsg (CMSG_SPACE(4) = 24 bytes) lies inside `control`, 8-aligned.
    let sent = unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.0.as_mut_ptr().cast();
        header.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd.as_raw_fd());
        libc::sendmsg(channel.as_raw_fd(), &header, libc::MSG_NOSIGNAL)
    };
    assert_eq!(sent, 0, "sendmsg: {}", std::io::Error::last_os_error());
}

/// A message of no bytes that carries an fd is not the end of the channel:
/// the worker took it for its master gone and drained (its later
/// connections unserved), and the fd, installed by the kernel and owned by
/// nothing, stayed open in the worker for good. It is closed now, and the
/// worker serves on.
fn a_message_of_no_bytes_is_no_end(backend: Backend) {
    let (stray, mut peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    serves_on_after(
        backend,
        |master_end, _| {
            send_no_bytes_with(master_end, stray.as_fd());
            drop(stray);
        },
        || {
            // Taken before the second batch: its only other copy is closed.
            peer.set_read_timeout(Some(READ_TIMEOUT)).expect("read timeout");
            assert_eq!(peer.read(&mut [0u8; 1]).map_err(|e| e.kind()), Ok(0), "the fd it carried was closed");
        },
    );
}

#[test]
fn uring_worker_serves_on_after_a_message_of_no_bytes() {
    a_message_of_no_bytes_is_no_end(Backend::Uring);
}

#[test]
fn epoll_worker_serves_on_after_a_message_of_no_bytes() {
    a_message_of_no_bytes_is_no_end(Backend::Epoll);
}
