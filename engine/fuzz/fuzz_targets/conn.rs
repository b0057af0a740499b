//! One connection's state machine (`conn/`) driven by a script of driver
//! events over an arbitrary input stream: bytes received in arbitrary
//! pieces, sends started and completed in part, none or in full, failed
//! sends, deadlines (some met with no receive buffer to read with, when a
//! timer waiting on input starts over), a drain, the client's FIN, the
//! reader watch's answers.
//! Checked after every event and at the end:
//! - every byte sent is HTTP/1.1 framing: a status line, field lines,
//!   `Content-Length` matching the content (none for a `HEAD`'s answer);
//! - the answers are those the parser gives the same stream, in order, up to
//!   where the connection ended (a last `408` aside); with the handler, each
//!   `200`'s content is its request's body, exact;
//! - answers sent = answers counted by `handle_sent` = requests parsed
//!   (unless the connection was cut short);
//! - nothing follows an answer that closes (`Connection: close`, any error);
//!   nothing is sent after our FIN or once closed; no read after the client's FIN;
//! - the connection closes in the end, after a FIN and a few deadlines;
//! - the same stream with no timer or drain event gives the same bytes
//!   whatever the pieces and partial sends (split invariance); a timer that
//!   started over for want of a buffer counts as no timer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_engine::fuzzing::{Setup, Sim, FIXED_BODY};
use ringmaster_engine::http::{Limits, Reply, RequestParser, Step};

/// Sizes of the pieces received, by an op's high nibble.
const PIECE: [usize; 16] = [1, 2, 3, 4, 5, 7, 10, 16, 25, 40, 64, 100, 200, 500, 1500, 100_000];

#[derive(Debug, Default)]
struct Outcome {
    out: Vec<u8>,
    answered: u32,
    parsed: u32,
    /// Cut short (a deadline, a failed send, the reader watch): answers owed may be lost.
    cut: bool,
    our_fin: bool,
    peer_fin: bool,
    /// The client's FIN came before all of the stream.
    early_fin: bool,
}

fn record(sim: &mut Sim, o: &mut Outcome, bytes: &[u8], answered: u32) {
    assert!(!o.our_fin || bytes.is_empty(), "{} bytes sent after our FIN", bytes.len());
    o.out.extend_from_slice(bytes);
    o.answered += answered;
    check(sim, o);
}

/// What holds after any event.
fn check(sim: &mut Sim, o: &mut Outcome) {
    o.parsed += sim.take_parsed();
    if sim.take_half_close() {
        assert!(!o.our_fin, "a second FIN");
        assert!(!sim.is_sending(), "FIN due with a send in flight");
        o.our_fin = true;
    }
    if o.peer_fin {
        assert!(!sim.wants_read(), "wants to read after the client's FIN");
    }
    if sim.is_closed() {
        if sim.is_sending() {
            // Closed with a send in flight (a deadline: its client reads
            // nothing): the kernel may have sent it all, and its answers go
            // uncounted.
            if let Some((bytes, answered)) = sim.complete_send(usize::MAX) {
                assert!(!o.our_fin || bytes.is_empty(), "bytes after our FIN");
                o.out.extend_from_slice(&bytes);
                assert_eq!(answered, 0, "answers counted once closed");
            }
        }
        assert!(sim.start_send().is_none(), "a send once closed");
    }
}

fn start(sim: &mut Sim) -> bool {
    match sim.start_send() {
        Some(bytes) => {
            assert!(!bytes.is_empty(), "an empty send");
            true
        }
        None => sim.is_sending(),
    }
}

fn complete(sim: &mut Sim, o: &mut Outcome, n: usize) {
    if let Some((bytes, answered)) = sim.complete_send(n) {
        record(sim, o, &bytes, answered);
    }
}

fn flush(sim: &mut Sim, o: &mut Outcome) {
    for _ in 0..1_000_000 {
        if !start(sim) {
            return;
        }
        complete(sim, o, usize::MAX);
    }
    panic!("sends never end");
}

fn drive(setup: Setup, payload: &[u8], ops: &[u8]) -> Outcome {
    let mut sim = Sim::new(setup);
    let mut o = Outcome::default();
    let mut fed = 0;
    for &op in ops {
        if sim.is_closed() {
            break;
        }
        let arg = usize::from(op >> 4);
        match op & 15 {
            5 => {
                start(&mut sim);
            }
            6 => {
                start(&mut sim);
                // Part of the send in flight: arg/15 of it.
                let n = sim.in_flight_len() * arg / 15;
                complete(&mut sim, &mut o, n);
            }
            7 => flush(&mut sim, &mut o),
            8 => {
                sim.deadline_passes();
                o.cut = true;
            }
            14 => {
                // A deadline met with no receive buffer to read with.
                o.cut |= !sim.deadline_passes_starved(arg & 1 == 1);
            }
            9 => sim.wait(arg as u64 * 250),
            10 => sim.drain(),
            11 => {
                if !o.peer_fin {
                    o.peer_fin = true;
                    o.early_fin = fed < payload.len();
                    sim.peer_closed();
                }
            }
            12 => sim.reader_look(if arg == 15 { None } else { Some(arg as u32) }),
            13 => {
                if sim.is_sending() {
                    sim.fail_send();
                    o.cut = true;
                }
            }
            kind => {
                if !o.peer_fin && fed < payload.len() {
                    let n = PIECE[arg].min(payload.len() - fed);
                    sim.receive(&payload[fed..fed + n], kind == 1);
                    fed += n;
                }
            }
        }
        check(&mut sim, &mut o);
    }
    if !sim.is_closed() && !o.peer_fin {
        sim.receive(&payload[fed..], false);
        check(&mut sim, &mut o);
    }
    flush(&mut sim, &mut o);
    if !sim.is_closed() && !o.peer_fin {
        o.peer_fin = true;
        sim.peer_closed();
        check(&mut sim, &mut o);
        flush(&mut sim, &mut o);
    }
    for _ in 0..20 {
        if sim.is_closed() {
            break;
        }
        sim.deadline_passes();
        check(&mut sim, &mut o);
        flush(&mut sim, &mut o);
    }
    assert!(sim.is_closed(), "still open after the FIN, everything sent and 20 deadlines: {sim:?}");
    sim.release();
    o
}

/// What the parser alone makes of the stream: each final reply with the
/// body handed on for it and whether it answers a `HEAD`; then whether the
/// request left incomplete (if any) is a `HEAD`.
struct Expected {
    replies: Vec<(Reply, bool, Vec<u8>)>,
    pending_head: bool,
}

fn expected(payload: &[u8], limits: &Limits) -> Expected {
    let mut parser = RequestParser::new();
    let mut replies = Vec::new();
    let mut body = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        match parser.step_with(&payload[at..], limits, &mut |d| body.extend_from_slice(d)) {
            Step::NeedMore => break,
            Step::Advance { consumed, reply } => {
                at += consumed;
                if let Some(reply) = reply {
                    replies.push((reply, parser.answering_head(), std::mem::take(&mut body)));
                    if reply.closes() {
                        break;
                    }
                }
            }
        }
    }
    Expected { replies, pending_head: parser.answering_head() }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    closes: bool,
    body: Vec<u8>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The answers in `out`; `head(i)`: the `i`-th final answer is a `HEAD`'s.
/// A cut connection's last answer may be cut short.
fn answers(out: &[u8], head: impl Fn(usize) -> bool, cut: bool) -> Vec<Answer> {
    let mut all: Vec<Answer> = Vec::new();
    let mut at = 0;
    let mut finals = 0;
    while at < out.len() {
        if let Some(last) = all.last() {
            assert!(!last.closes, "bytes after an answer that closes: {:?}", String::from_utf8_lossy(out));
        }
        let Some(end) = out[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(cut, "an answer's head never ends: {:?}", String::from_utf8_lossy(&out[at..]));
            break;
        };
        let head_block = &out[at..at + end];
        at += end + 4;
        let text = std::str::from_utf8(head_block).expect("an answer's head is UTF-8");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let rest = status_line.strip_prefix("HTTP/1.1 ").unwrap_or_else(|| panic!("status line {status_line:?}"));
        assert!(rest.len() > 4 && rest.as_bytes()[3] == b' ', "status line {status_line:?}");
        let status: u16 = rest[..3].parse().unwrap_or_else(|_| panic!("status line {status_line:?}"));
        assert!((100..600).contains(&status), "status {status}");
        let mut length = None;
        let mut closes = false;
        for line in lines {
            let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("field line {line:?}"));
            assert!(!name.is_empty() && name.bytes().all(is_tchar), "field name {name:?}");
            assert!(!value.contains('\r') && !value.contains('\n'), "field value {value:?}");
            match name.to_ascii_lowercase().as_str() {
                "content-length" => {
                    assert!(length.is_none(), "two Content-Length fields");
                    length = Some(value.parse::<usize>().unwrap_or_else(|_| panic!("Content-Length {value:?}")));
                }
                "transfer-encoding" => panic!("Transfer-Encoding in an answer"),
                "connection" => closes |= value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        if status < 200 {
            assert_eq!(status, 100, "an informational answer other than 100");
            assert!(length.is_none(), "a 100 with a length");
            all.push(Answer { status, closes: false, body: Vec::new() });
            continue;
        }
        let is_head = head(finals);
        finals += 1;
        let content = match (status, length) {
            (204 | 304, None) => 0,
            (_, Some(n)) => {
                if is_head {
                    0
                } else {
                    n
                }
            }
            (_, None) => panic!("a {status} without Content-Length"),
        };
        if at + content > out.len() {
            assert!(cut, "content cut short: {} of {content} bytes", out.len() - at);
            break;
        }
        let body = out[at..at + content].to_vec();
        at += content;
        if status >= 400 {
            assert!(closes, "a {status} that does not say it closes");
        }
        all.push(Answer { status, closes, body });
    }
    all
}

fn setup_of(byte: u8) -> Setup {
    let max_header = [128, 512, 2048, 8192][usize::from((byte >> 1) & 3)];
    Setup {
        handler: byte & 1 == 1,
        max_header,
        max_body: [0, 16, 300, 5000][usize::from((byte >> 3) & 3)],
        carry: max_header,
        body_buffers: 1 + usize::from((byte >> 5) & 1),
    }
}

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() < 2 {
        return;
    }
    let setup = setup_of(bytes[0]);
    let count = usize::from(bytes[1]).min(bytes.len() - 2);
    let ops = &bytes[2..2 + count];
    let payload = &bytes[2 + count..];
    let limits = Limits { max_header: setup.max_header, max_body: setup.max_body };
    let want = expected(payload, &limits);
    let final_heads: Vec<bool> = want.replies.iter().filter(|r| r.0.is_final()).map(|r| r.1).collect();
    let head = |i: usize| final_heads.get(i).copied().unwrap_or(want.pending_head);
    let run = drive(setup, payload, ops);
    let got = answers(&run.out, head, run.cut);
    let finals: Vec<&Answer> = got.iter().filter(|a| a.status >= 200).collect();

    // Counting: what went out is what `handle_sent` counted, is what was parsed.
    if run.cut {
        assert!(
            finals.len() as u32 >= run.answered,
            "{} answers sent, {} counted: {:?}",
            finals.len(),
            run.answered,
            String::from_utf8_lossy(&run.out)
        );
        assert!(run.parsed >= run.answered, "parsed {} < answered {}", run.parsed, run.answered);
    } else {
        assert_eq!(finals.len() as u32, run.answered, "answers sent vs counted");
        assert_eq!(run.parsed, run.answered, "requests parsed vs answered");
    }

    // The answers are the parser's, in order, up to where the connection ended.
    let wanted: Vec<(u16, Option<&[u8]>)> = want
        .replies
        .iter()
        .map(|(reply, is_head, body)| {
            let status = reply.status().0;
            let content = match reply {
                _ if *is_head => Some(&[][..]),
                Reply::Ok | Reply::OkKeepAlive | Reply::OkClose if setup.handler => Some(&body[..]),
                Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => Some(FIXED_BODY),
                _ => None,
            };
            (status, content)
        })
        .collect();
    let mut finals_seen = 0;
    let mut i = 0;
    for answer in &got {
        if answer.status == 100 {
            continue;
        }
        // Match the answer to the next final reply (skipping the 100s the parser gave).
        while i < want.replies.len() && want.replies[i].0 == Reply::Continue {
            i += 1;
        }
        finals_seen += 1;
        match wanted.get(i) {
            Some(&(status, content)) if status == answer.status => {
                if let Some(content) = content {
                    assert_eq!(answer.body, content, "content of answer {finals_seen}");
                }
            }
            _ => {
                // Only a timer's 408 may answer what the parser has not (yet) answered.
                assert!(
                    answer.status == 408 && finals_seen == finals.len(),
                    "answer {finals_seen} is {} where the parser says {:?} (all: {:?})",
                    answer.status,
                    want.replies.get(i).map(|r| r.0),
                    want.replies.iter().map(|r| r.0).collect::<Vec<_>>()
                );
            }
        }
        i += 1;
    }

    // Nothing cut short, no timer, no drain: every request answered, and
    // the same bytes whatever the pieces.
    let quiet = !run.cut && !run.early_fin && !ops.iter().any(|&op| matches!(op & 15, 8 | 10 | 12 | 13));
    if quiet {
        let whole = drive(setup, payload, &[]);
        assert_eq!(
            String::from_utf8_lossy(&run.out),
            String::from_utf8_lossy(&whole.out),
            "the same stream in pieces and whole"
        );
    }
});
