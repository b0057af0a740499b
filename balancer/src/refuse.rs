//! Refusing a connection that no worker can take (every worker is full, or
//! the master is stopping): a `503` and the server's close, never a bare reset.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::SystemTime;

use ringmaster_engine::http::Reply;
use ringmaster_engine::response::standalone;

/// Most request bytes read and thrown away before answering.
const DISCARD_LIMIT: usize = 16 * 1024;

/// Answers `503` and closes, without ever blocking the master.
///
/// Whatever the client already sent is read first: closing a socket with
/// unread input sends a reset, which can destroy the answer before the
/// client reads it. Best effort: a request still on its way can still meet
/// the reset, and a socket whose buffer is full gets no answer.
pub fn refuse(connection: OwnedFd) {
    let fd = connection.as_raw_fd();
    let mut scratch = [0u8; 4096];
    let mut discarded = 0;
    while discarded < DISCARD_LIMIT {
        // SAFETY: reading into a live local buffer of the given length on an fd we own.
        let n = unsafe { libc::recv(fd, scratch.as_mut_ptr().cast(), scratch.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            break;
        }
        discarded += n as usize;
    }
    // The same 503 a worker would send, formatted now: this path is rare.
    let answer = standalone(Reply::ServiceUnavailable, b"", SystemTime::now());
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: sending from a live buffer on an fd we own; a failure leaves
    // nothing to undo, the close below follows either way.
    unsafe {
        libc::send(fd, answer.as_ptr().cast(), answer.len(), flags);
        libc::shutdown(fd, libc::SHUT_WR);
    }
    drop(connection);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn a_refused_client_reads_503_then_end_of_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let (server, _) = listener.accept().expect("accept");
        // Make sure the request has arrived before refusing, as in the common case.
        let mut probe = [0u8; 1];
        server.peek(&mut probe).expect("peek");
        refuse(OwnedFd::from(server));
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).expect("read to the server's close");
        let text = String::from_utf8(answer).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\nService Unavailable\n"), "{text}");
    }
}
