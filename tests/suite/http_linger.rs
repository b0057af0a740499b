//! A closing connection lingers while its client is still sending (as
//! nginx's `lingering_close`): after a refusal sent before the request's
//! end, the server half-closes and reads on, each piece of input buying
//! another quiet window (the engine's `LINGER_MS`, 2 s), up to a cap. Until
//! 2026-12-07 the linger ended 2 s after it began whatever came: a client
//! still uploading its refused body met a reset on its writes, and many
//! clients then report a connection error, not the answer already sent.

use crate::util;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use util::*;

/// The engine's quiet window (`conn::close::LINGER_MS`).
const LINGER: Duration = Duration::from_secs(2);
/// The client's pause between pieces: a fifth of the quiet window at most,
/// so that a slow machine's late wake-ups cannot make one look quiet.
const PAUSE: Duration = Duration::from_millis(200);
/// How long the client goes on sending after the refusal: clearly past a
/// linger that input did not move on.
const SENDING_FOR: Duration = Duration::from_millis(3_500);

#[test]
fn a_client_still_sending_a_refused_body_is_not_reset() {
    const _: () = assert!(PAUSE.as_millis() * 5 <= LINGER.as_millis() && SENDING_FOR.as_millis() > LINGER.as_millis());
    let s = Server::start(&["--workers", "1", "--max-body", "1000"]);
    let mut c = s.connect();
    // Refused at its head (over --max-body), the body still to come.
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nthe first piece of the body");
    // The refusal has come: the server lingers from about now. Peeked, not
    // read: this client reads its answer after its body, as many do.
    let mut first = [0u8; 1];
    let peeked = c.stream().peek(&mut first).unwrap_or_else(|e| panic!("waiting for the refusal: {e}"));
    assert_eq!(peeked, 1, "the server closed before its refusal");
    let refused_at = Instant::now();
    let piece = [b'x'; 100];
    let mut pieces = 0;
    while refused_at.elapsed() < SENDING_FOR {
        std::thread::sleep(PAUSE);
        let sent = c.stream().write_all(&piece);
        let since = refused_at.elapsed();
        sent.unwrap_or_else(|e| panic!("piece {pieces} of the body, {since:?} after the refusal: {e}"));
        pieces += 1;
    }
    c.stream().shutdown(std::net::Shutdown::Write).unwrap_or_else(|e| panic!("shutting down the client's writes: {e}"));
    let answer = c.try_read().unwrap_or_else(|e| panic!("reading the refusal after {pieces} pieces: {e}"));
    check_error(&answer, 413);
    // Then the server's close: an EOF, not a reset.
    assert!(c.r.buffer().is_empty(), "bytes after the refusal: {:?}", String::from_utf8_lossy(c.r.buffer()));
    let mut rest = Vec::new();
    match c.r.get_mut().read_to_end(&mut rest) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes after the refusal: {:?}", String::from_utf8_lossy(&rest)),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => panic!("the server reset the connection: {e}"),
        Err(e) => panic!("reading to the server's close: {e}"),
    }
    let error = c.stream().take_error().expect("SO_ERROR");
    assert!(error.is_none(), "the connection ended in an error: {error:?}");
    s.connect().get_ok();
}
