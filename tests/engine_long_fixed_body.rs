//! A long fixed body is held once, apart from the preformatted pages: each
//! copy of its reply goes out as two slices, the head on a page and the
//! body. Pipelined `GET`s and `HEAD`s of it are answered whole and in
//! order, and a slow reader, whose sends stop anywhere in a head or a body,
//! gets every byte once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use ringmaster_engine::handler::FixedBody;
use ringmaster_engine::{Backend, EngineConfig};

mod in_process;
use in_process::pattern;

/// The period of a body's pattern: a lost, repeated or misplaced byte breaks it.
const PERIOD: usize = 31;

/// Reads one response's head from `reader`: its status line and `Content-Length`.
fn read_head(reader: &mut impl BufRead, answer: usize) -> (String, usize) {
    let mut status = String::new();
    reader.read_line(&mut status).expect("a status line");
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        assert!(!line.is_empty(), "answer {answer}: the stream ended inside a head");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = Some(value.trim_end().parse().expect("a Content-Length"));
        }
    }
    (status, length.expect("a Content-Length"))
}

/// Reads `len` body bytes and checks each against the pattern, in pieces of
/// at most `piece` bytes (a slow reader: small reads).
fn read_body(reader: &mut impl Read, len: usize, piece: usize, answer: usize) {
    let mut buf = vec![0u8; piece];
    let mut at = 0;
    while at < len {
        let want = piece.min(len - at);
        reader.read_exact(&mut buf[..want]).expect("body bytes");
        if let Some(bad) = buf[..want].iter().enumerate().position(|(i, &b)| b != pattern(at + i, PERIOD)) {
            panic!("answer {answer}: body byte {} differs from the body served", at + bad);
        }
        at += want;
    }
}

/// Serves a fixed body of `len` bytes, pipelines `heads.len()` requests
/// (`HEAD` where true, else `GET`) from a thread of their own, and reads
/// the answers in pieces of `piece` bytes, checking each.
fn pipelined_answers_are_whole_and_in_order(backend: Backend, len: usize, heads: &[bool], piece: usize) {
    let body: Vec<u8> = (0..len).map(|i| pattern(i, PERIOD)).collect();
    let config = EngineConfig { backend, max_conns: 16, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, FixedBody::new(body));
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let batch: Vec<u8> = heads
        .iter()
        .flat_map(|&head| {
            if head {
                &b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"[..]
            } else {
                &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]
            }
        })
        .copied()
        .collect();
    let mut writer = stream.try_clone().expect("a second handle");
    let writing = thread::spawn(move || writer.write_all(&batch));
    let mut reader = BufReader::with_capacity(piece, stream);
    for (answer, &head) in heads.iter().enumerate() {
        let (status, length) = read_head(&mut reader, answer);
        assert_eq!(status, "HTTP/1.1 200 OK\r\n", "answer {answer}");
        assert_eq!(length, len, "answer {answer}");
        if !head {
            read_body(&mut reader, len, piece, answer);
        }
    }
    writing.join().expect("the writer").expect("writing the pipeline");
    // Nothing more: every answer was sent once.
    reader.get_ref().set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => panic!("the server closed the connection"),
        Ok(_) => panic!("bytes past the last answer"),
        Err(e) => assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}"),
    }
    worker.stop();
}

/// 100 MB, pipelined: three `GET`s with two `HEAD`s between them.
fn a_100_mb_body(backend: Backend) {
    pipelined_answers_are_whole_and_in_order(backend, 100_000_000, &[false, true, false, true, false], 1 << 20);
}

/// 40 KB in 300 pipelined answers (every 7th a `HEAD`), read 997 bytes at
/// a time: the server's sends fill the socket and stop anywhere.
fn a_slow_reader(backend: Backend) {
    let heads: Vec<bool> = (0..300).map(|i| i % 7 == 3).collect();
    pipelined_answers_are_whole_and_in_order(backend, 40_000, &heads, 997);
}

/// An error is answered with its own short body, not the long one: the
/// long body is apart only for the replies that carry it.
fn an_error_gets_its_own_body(backend: Backend) {
    let config = EngineConfig { backend, max_conns: 16, ..EngineConfig::default() };
    let (worker, address) = in_process::spawn_on_loopback(config, FixedBody::new(vec![b'l'; 40_000]));
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNOT A REQUEST\r\n\r\n").expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read to the server's FIN");
    let text = String::from_utf8_lossy(&bytes);
    let error = text.find("HTTP/1.1 400 Bad Request\r\n").expect("a 400 after the 200");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &text[..200]);
    assert_eq!(error, text.find("\r\n\r\n").expect("a head") + 4 + 40_000, "the 400 follows the whole body");
    assert!(
        text[error..].ends_with("Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n"),
        "{}",
        &text[error..]
    );
    worker.stop();
}

#[test]
fn uring_an_error_reply_keeps_its_own_body_beside_a_long_fixed_body() {
    an_error_gets_its_own_body(Backend::Uring);
}

#[test]
fn epoll_an_error_reply_keeps_its_own_body_beside_a_long_fixed_body() {
    an_error_gets_its_own_body(Backend::Epoll);
}

#[test]
fn uring_a_100_mb_fixed_body_pipelined_with_heads_is_answered_whole_and_in_order() {
    a_100_mb_body(Backend::Uring);
}

#[test]
fn epoll_a_100_mb_fixed_body_pipelined_with_heads_is_answered_whole_and_in_order() {
    a_100_mb_body(Backend::Epoll);
}

#[test]
fn uring_a_slow_reader_of_a_long_fixed_body_gets_every_answer_whole_and_in_order() {
    a_slow_reader(Backend::Uring);
}

#[test]
fn epoll_a_slow_reader_of_a_long_fixed_body_gets_every_answer_whole_and_in_order() {
    a_slow_reader(Backend::Epoll);
}
