//! Micro benches of the hot path, without the ring:
//! - `http/*`: parsing a typical request and producing its response slice,
//!   and parsing 16 pipelined requests answered with one slice;
//! - `dispatch/*`: handing one fd, and a batch of 64, from master to worker
//!   over a `SOCK_SEQPACKET` pair with `SCM_RIGHTS` (sendmsg + recvmsg + close
//!   of what arrived): the `rr` mode's cost per connection;
//! - `dispatch/accept`: a loopback connect + accept + close, the cost the fd
//!   hand-off adds to.
//!
//! 1 s of warm-up and 3 s of measurement each, unless criterion's command
//! line (`--warm-up-time`, `--measurement-time`, after `--`) says otherwise.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmaster_engine::channel::{channel_pair, recv_blocking, send_blocking, Message, Tag};
use ringmaster_engine::http::{Limits, Reply, RequestParser, Step};
use ringmaster_engine::response::Responses;

/// A typical wrk-like request: a GET with Host and a few common headers.
const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\n\
    Host: 127.0.0.1:8080\r\n\
    User-Agent: wrk/4.2.0\r\n\
    Accept: */*\r\n\
    Accept-Encoding: gzip, deflate\r\n\
    Connection: keep-alive\r\n\
    \r\n";
/// The server's defaults (`--max-header`, `--max-body`).
const LIMITS: Limits = Limits { max_header: 8192, max_body: 1 << 20 };
/// Requests in one pipelined read.
const DEPTH: usize = 16;
/// fds in one batched hand-off.
const BATCH: usize = 64;

/// Parses every request in `input`; returns how many and the last reply.
fn parse_all(parser: &mut RequestParser, input: &[u8]) -> (usize, Reply) {
    let mut at = 0;
    let mut count = 0;
    let mut last = Reply::BadRequest;
    while at < input.len() {
        match parser.step(&input[at..], &LIMITS) {
            Step::Advance { consumed, reply } => {
                at += consumed;
                if let Some(reply) = reply {
                    count += 1;
                    last = reply;
                }
            }
            Step::NeedMore => panic!("complete requests reported incomplete"),
        }
    }
    (count, last)
}

fn http(c: &mut Criterion) {
    let responses = Responses::new(b"hello world\n", SystemTime::now()).expect("replies");
    let pipelined = REQUEST.repeat(DEPTH);
    // Check once what the loops below assume.
    assert_eq!(parse_all(&mut RequestParser::new(), REQUEST), (1, Reply::Ok));
    assert_eq!(parse_all(&mut RequestParser::new(), &pipelined), (DEPTH, Reply::Ok));

    let mut group = c.benchmark_group("http");

    group.throughput(Throughput::Elements(1));
    let mut parser = RequestParser::new();
    group.bench_function("parse+respond", |b| {
        b.iter(|| match parser.step(black_box(REQUEST), &LIMITS) {
            Step::Advance { consumed, reply: Some(reply) } => {
                let response = responses.run(reply, 1);
                black_box((consumed, response.as_ptr(), response.len()))
            }
            other => panic!("the typical request did not parse: {other:?}"),
        });
    });

    group.throughput(Throughput::Elements(DEPTH as u64));
    group.bench_function("parse+respond-pipelined16", |b| {
        b.iter(|| {
            // As the worker does: parse the whole read, answer with one slice of a run.
            let (count, reply) = parse_all(&mut parser, black_box(&pipelined));
            let response = responses.run(reply, count);
            black_box((response.as_ptr(), response.len()))
        });
    });
    group.finish();
}

/// `count` connected loopback TCP sockets (server sides), with their clients
/// kept open beside them: real connection fds to hand off.
fn connections(count: usize) -> Vec<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address");
    (0..count)
        .map(|_| {
            let client = TcpStream::connect(addr).expect("connect to the loopback listener");
            let (server, _) = listener.accept().expect("accept a loopback connection");
            (server, client)
        })
        .collect()
}

fn dispatch(c: &mut Criterion) {
    let (master, worker) = channel_pair().expect("channel socketpair");
    let pairs = connections(BATCH);
    let fds: Vec<RawFd> = pairs.iter().map(|(server, _)| server.as_raw_fd()).collect();
    let mut outbox = Message::new();
    let mut inbox = Message::new();

    let mut group = c.benchmark_group("dispatch");

    for (name, batch) in [("scm_rights-1fd", &fds[..1]), ("scm_rights-64fds", &fds[..])] {
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                send_blocking(master.as_fd(), &mut outbox, Tag::Connections, batch)
                    .unwrap_or_else(|e| panic!("sending {} fds over the channel: {e}", batch.len()));
                // The worker's side: receive, then close what arrived (dropping it).
                let received = recv_blocking(worker.as_fd(), &mut inbox, &mut drop::<OwnedFd>)
                    .unwrap_or_else(|e| panic!("receiving {} fds from the channel: {e}", batch.len()));
                assert_eq!(received.map(|r| (r.fds, r.truncated)), Some((batch.len(), false)));
            });
        });
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address");
    group.throughput(Throughput::Elements(1));
    group.bench_function("accept", |b| {
        b.iter(|| {
            let client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            let (server, _) = listener.accept().unwrap_or_else(|e| panic!("accept on {addr}: {e}"));
            // The server side closes first (as ringmaster does on `Connection: close`):
            // TIME_WAIT stays on the listener's side and the client's ephemeral
            // ports are not used up however many iterations criterion runs.
            drop(server);
            drop(client);
        });
    });
    group.finish();
    drop(pairs);
}

// 1 s of warm-up and 3 s of measurement unless the command line says
// otherwise: `criterion_group!` applies its arguments over this config, and
// the groups set no times of their own (which would override both).
criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = http, dispatch
}
criterion_main!(benches);
