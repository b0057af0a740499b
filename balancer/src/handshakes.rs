//! The handshakes under way on a listener's port, counted for the wait
//! for them before a listener stops listening at a stop.
//!
//! A handshake whose SYN the listener took (the SYN-ACK went out: the
//! client's connect returns) completes when the client's ACK comes. If the
//! listener no longer listens by then, the kernel resets that client: its
//! request socket is dropped and the ACK answered with a reset (seen), or,
//! with the ACK in processing as the listener closes, `inet_child_forget`
//! resets the new connection (`inet_csk_complete_hashdance` finds the
//! listener closed); at a stop `tcp_migrate_req` has no listener left to
//! move it to. So a stop first turns newcomers away (their SYNs dropped:
//! their retry meets a closed port and is refused), then waits until the
//! handshakes already begun have completed into the queue, answering the
//! queue meanwhile (a full one has the kernel drop their last ACK until
//! there is room), then answers it once more and shuts. The wait is the
//! master's (`master/answer_at_stop.rs`): a round every [`POLL`], its loop
//! turning between them. Where the count cannot be had (no
//! `NETLINK_SOCK_DIAG`: seccomp, an old kernel), it is the packets in
//! flight only.
//!
//! The count comes from the kernel's socket diagnostics
//! (`NETLINK_SOCK_DIAG`, `inet_diag`): the request sockets (`SYN-RECV`)
//! with the listener's local port, of the listener's family: a request
//! socket takes its listener's (`inet_reqsk_alloc`), and an IPv4 client of
//! a `[::]` listener is an IPv6 one there (IPv4-mapped). A port is not a
//! listener: other listeners on it (a `reuseport` group's still open)
//! count too, which only lengthens the wait, and the wait is bounded. A
//! handshake answered with a SYN cookie (a SYN flood) has no request socket
//! and is not seen.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage};

/// How long a stop waits for the handshakes begun on its listeners to
/// complete. On a loopback or a LAN their last ACK comes within µs or ms;
/// a client that holds it back (one about to send, up to its delayed-ACK
/// timer's 200 ms) or a distant one takes longer. One whose ACK never
/// comes (a SYN flood's) keeps the listener open this long; the master's
/// loop turns meanwhile.
pub const HANDSHAKES_WAIT: Duration = Duration::from_millis(500);

/// How often the count is asked again while handshakes are under way (and
/// the queue answered): each dump walks every TCP socket the host holds.
pub const POLL: Duration = Duration::from_millis(5);

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h): a dump request, and each
/// socket of its answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR` and `NLMSG_DONE` (linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST | NLM_F_DUMP`.
const DUMP_REQUEST: u16 = 0x1 | 0x300;
/// The states asked for: `TCP_SYN_RECV`, which includes the request
/// sockets of handshakes under way on a listener (`TCP_NEW_SYN_RECV`).
const SYN_RECV_STATES: u32 = 1 << 3;
/// `struct nlmsghdr`, and `struct inet_diag_req_v2` after it.
const HEADER_LEN: usize = 16;
const REQUEST_LEN: usize = 56;

/// How many handshakes are under way (`SYN-RECV`) on `listener`'s local
/// port, in its family: an IPv6 listener's IPv4 clients (unless
/// `IPV6_V6ONLY`) are IPv6 request sockets, so one dump sees them all. Each
/// dump walks every TCP socket the host holds: `ss` took 20 ms for one with
/// 73,000 in `TIME_WAIT` (21 ms here with 25,000 and 3,000 under way).
pub fn handshakes_under_way(listener: RawFd) -> io::Result<usize> {
    let (v6, port) = local_port(listener)?;
    let diag = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| io::Error::other(format!("a NETLINK_SOCK_DIAG socket: {e}")))?;
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    count(&diag, family as u8, port)
        .map_err(|e| io::Error::new(e.kind(), format!("counting the handshakes on port {port}: {e}")))
}

/// Whether `listener` is IPv6, and its local port.
fn local_port(listener: RawFd) -> io::Result<(bool, u16)> {
    let local = socket::getsockname::<SockaddrStorage>(listener)?;
    local
        .as_sockaddr_in()
        .map(|v4| (false, v4.port()))
        .or_else(|| local.as_sockaddr_in6().map(|v6| (true, v6.port())))
        .ok_or_else(|| io::Error::other("the listener has no IP address"))
}

/// One dump of `family`'s TCP sockets in `SYN-RECV` on local `port`: how many.
fn count(diag: &OwnedFd, family: u8, port: u16) -> io::Result<usize> {
    socket::send(diag.as_raw_fd(), &dump_request(family, port), MsgFlags::empty())?;
    let mut answer = vec![0u8; 32 * 1024];
    let mut sockets = 0;
    loop {
        let len = socket::recv(diag.as_raw_fd(), &mut answer, MsgFlags::empty())?;
        match messages(&answer[..len], &mut sockets)? {
            Dump::Done => return Ok(sockets),
            Dump::More => {}
        }
    }
}

/// The request: `nlmsghdr` then `inet_diag_req_v2`, in the host's order
/// but for the port (network order, as the kernel keeps it).
fn dump_request(family: u8, port: u16) -> [u8; HEADER_LEN + REQUEST_LEN] {
    let mut request = [0u8; HEADER_LEN + REQUEST_LEN];
    request[0..4].copy_from_slice(&((HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request[6..8].copy_from_slice(&DUMP_REQUEST.to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // sdiag_family, sdiag_protocol, idiag_ext, pad, idiag_states.
    request[16] = family;
    request[17] = libc::IPPROTO_TCP as u8;
    request[20..24].copy_from_slice(&SYN_RECV_STATES.to_ne_bytes());
    // inet_diag_sockid: idiag_sport first; the rest (any) stays 0.
    request[24..26].copy_from_slice(&port.to_be_bytes());
    request
}

enum Dump {
    Done,
    More,
}

/// Counts the sockets in one datagram of the answer into `sockets`.
fn messages(mut datagram: &[u8], sockets: &mut usize) -> io::Result<Dump> {
    while datagram.len() >= HEADER_LEN {
        let field = |at: usize| [datagram[at], datagram[at + 1]];
        let len = u32::from_ne_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]) as usize;
        let kind = u16::from_ne_bytes(field(4));
        if len < HEADER_LEN || len > datagram.len() {
            return Err(io::Error::other(format!("a malformed sock_diag answer ({len} bytes of {})", datagram.len())));
        }
        match kind {
            NLMSG_DONE => return Ok(Dump::Done),
            NLMSG_ERROR => {
                let code = datagram
                    .get(HEADER_LEN..HEADER_LEN + 4)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                return Err(io::Error::from_raw_os_error(-code));
            }
            SOCK_DIAG_BY_FAMILY => *sockets += 1,
            _ => {}
        }
        datagram = &datagram[len.next_multiple_of(4).min(datagram.len())..];
    }
    Ok(Dump::More)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// A listener that defers its accepts (`TCP_DEFER_ACCEPT`) leaves a
    /// handshake under way (`SYN-RECV`) until the client's first data: the
    /// client's connect has returned, and the count sees it until it sends.
    #[test]
    fn a_handshake_is_counted_until_it_completes() {
        // An IPv6 listener's IPv4 client too (an IPv4-mapped address).
        for (bind, to) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1"), ("[::]:0", "127.0.0.1")] {
            let listener = TcpListener::bind(bind).expect("a listener");
            let fd = listener.as_raw_fd();
            let addr = std::net::SocketAddr::new(
                to.parse().expect("an address"),
                listener.local_addr().expect("its address").port(),
            );
            defer_accepts(fd);
            assert_eq!(handshakes_under_way(fd).expect("the count"), 0, "{bind} from {to}: none yet");
            let mut client = TcpStream::connect(addr).expect("a connect");
            assert_eq!(handshakes_under_way(fd).expect("the count"), 1, "{bind} from {to}: the deferred one");
            // Its data completes the handshake (on a loopback, before the send returns).
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("a request");
            assert_eq!(handshakes_under_way(fd).expect("the count"), 0, "{bind} from {to}: completed");
            listener.accept().expect("the completed connection is queued");
        }
    }

    /// Many under way: the dump's answer comes in several datagrams (here
    /// the first held 42 sockets, the next up to 368 each, into the 32 KiB
    /// buffer), and each socket is counted.
    #[test]
    fn handshakes_are_counted_across_a_dump_of_many_datagrams() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let fd = listener.as_raw_fd();
        // SAFETY: listen on a descriptor this test holds: a queue for them all.
        assert_eq!(unsafe { libc::listen(fd, 4096) }, 0, "listen: {}", io::Error::last_os_error());
        defer_accepts(fd);
        let addr = listener.local_addr().expect("its address");
        let clients: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(addr).expect("a connect")).collect();
        assert_eq!(handshakes_under_way(fd).expect("the count"), clients.len());
    }

    /// An IPv4 client of a `[::]` listener is an IPv6 request socket: one
    /// dump, of the listener's family, sees it.
    #[test]
    fn an_ipv4_client_of_an_ipv6_listener_is_in_the_ipv6_dump() {
        let listener = TcpListener::bind("[::]:0").expect("a listener");
        let fd = listener.as_raw_fd();
        defer_accepts(fd);
        let port = listener.local_addr().expect("its address").port();
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("a connect");
        let diag = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .expect("a sock_diag socket");
        assert_eq!(count(&diag, libc::AF_INET6 as u8, port).expect("the IPv6 count"), 1);
        assert_eq!(count(&diag, libc::AF_INET as u8, port).expect("the IPv4 count"), 0);
    }

    /// Sets `TCP_DEFER_ACCEPT` (10 s): a handshake stays under way until its client sends.
    fn defer_accepts(fd: RawFd) {
        let deferred: libc::c_int = 10;
        // SAFETY: `deferred` lives across the call, which copies it; the size is an int's.
        let set = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&deferred as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "TCP_DEFER_ACCEPT: {}", io::Error::last_os_error());
    }

    #[test]
    fn an_error_answer_is_its_errno() {
        let mut error = [0u8; HEADER_LEN + 4];
        error[0..4].copy_from_slice(&((HEADER_LEN + 4) as u32).to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[HEADER_LEN..].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        let e = messages(&error, &mut 0).err().expect("an error");
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }
}
