//! Refusing a connection that no worker can take (every worker is full, or
//! the master is stopping): a `503` and the server's close, never a bare
//! reset: the input is read before the answer, and the socket stays open a
//! moment after it, for a request still on its way.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use ringmaster_engine::http::Reply;
use ringmaster_engine::response::standalone;

/// Most request bytes read and thrown away before answering, and again
/// before the close.
const DISCARD_LIMIT: usize = 16 * 1024;
/// How long a refused connection stays open after its answer and FIN, so
/// that a request still on its way lands in an open socket and not in a
/// closed one, which would answer it with a reset that can destroy the
/// `503` before the client reads it.
const REFUSED_LINGER: Duration = Duration::from_millis(200);
/// Refused connections kept open at once; past that, one closes at once.
const LINGERING_MAX: usize = 1024;

/// Refused connections, answered and kept open a moment before their close.
#[derive(Debug)]
pub struct Refusals {
    lingering: VecDeque<(Instant, OwnedFd)>,
}

impl Refusals {
    /// None lingering yet.
    pub fn new() -> Refusals {
        // Grown as refusals come (a rare path, which allocates its answer
        // too), not made at start, where the master's address space may be tight.
        Refusals { lingering: VecDeque::new() }
    }

    /// Answers `503` and sends the FIN now, without ever blocking the
    /// master; closes 200 ms later (`REFUSED_LINGER`), or now when too many linger.
    pub fn refuse(&mut self, connection: OwnedFd, now: Instant) {
        discard_input(&connection);
        // The same 503 a worker would send, formatted now: this path is rare.
        let answer = standalone(Reply::ServiceUnavailable, b"", SystemTime::now());
        let fd = connection.as_raw_fd();
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: sending from a live buffer on an fd we own; a failure leaves
        // nothing to undo, the close follows either way.
        unsafe {
            libc::send(fd, answer.as_ptr().cast(), answer.len(), flags);
            libc::shutdown(fd, libc::SHUT_WR);
        }
        if self.lingering.len() == LINGERING_MAX {
            close(connection);
            return;
        }
        self.lingering.push_back((now + REFUSED_LINGER, connection));
    }

    /// Closes the refused connection that has lingered longest, its linger
    /// cut short, to free its descriptor for the next refusal when the
    /// master has none left (its `503` and FIN are out, its input read);
    /// false when none lingers.
    pub fn close_oldest(&mut self) -> bool {
        let Some((_, connection)) = self.lingering.pop_front() else { return false };
        close(connection);
        true
    }

    /// Some refused connection still lingers: an exit now would close it
    /// early, and a request still on its way would meet a reset.
    pub fn lingering(&self) -> bool {
        !self.lingering.is_empty()
    }

    /// Closes the refused connections whose linger has ended at `now`.
    pub fn close_due(&mut self, now: Instant) {
        while self.lingering.front().is_some_and(|&(due, _)| due <= now) {
            if let Some((_, connection)) = self.lingering.pop_front() {
                close(connection);
            }
        }
    }
}

impl Default for Refusals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Refusals {
    fn drop(&mut self) {
        for (_, connection) in self.lingering.drain(..) {
            close(connection);
        }
    }
}

/// Closes after reading what came: a close with unread input sends a reset.
fn close(connection: OwnedFd) {
    discard_input(&connection);
    drop(connection);
}

/// Reads and throws away what the client sent, up to [`DISCARD_LIMIT`].
fn discard_input(connection: &OwnedFd) {
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
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn read_503_to_the_end(client: &mut TcpStream) {
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).expect("read to the server's FIN");
        let text = String::from_utf8(answer).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\nService Unavailable\n"), "{text}");
    }

    #[test]
    fn a_refused_client_reads_503_then_end_of_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let (server, _) = listener.accept().expect("accept");
        // Make sure the request has arrived before refusing, as in the common case.
        let mut probe = [0u8; 1];
        server.peek(&mut probe).expect("peek");
        let mut refusals = Refusals::new();
        refusals.refuse(OwnedFd::from(server), Instant::now());
        read_503_to_the_end(&mut client);
    }

    /// Refused before its request came (the master accepts as the handshake
    /// ends): the request then meets an open socket, not a reset, and the
    /// close, later, reads it first.
    #[test]
    fn a_request_that_comes_after_the_refusal_meets_no_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let mut refusals = Refusals::new();
        let now = Instant::now();
        refusals.refuse(OwnedFd::from(server), now);
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        read_503_to_the_end(&mut client);
        refusals.close_due(now + REFUSED_LINGER);
        assert!(refusals.lingering.is_empty(), "closed once due");
        assert!(client.take_error().expect("SO_ERROR").is_none(), "the close sent a reset");
    }

    /// At the master's open-file limit the oldest refusal gives its
    /// descriptor back early, its answer already out.
    #[test]
    fn the_oldest_refusal_closes_early_to_free_its_descriptor() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut first = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let second = TcpStream::connect(addr).expect("connect");
        let (later, _) = listener.accept().expect("accept");
        let mut refusals = Refusals::new();
        let now = Instant::now();
        refusals.refuse(OwnedFd::from(server), now);
        refusals.refuse(OwnedFd::from(later), now);
        assert!(refusals.close_oldest());
        assert_eq!(refusals.lingering.len(), 1, "the later one lingers on");
        read_503_to_the_end(&mut first);
        assert!(refusals.close_oldest());
        assert!(!refusals.close_oldest(), "none left");
        drop(second);
    }
}
