//! The replies laid out, sent apart, dated and held.

use std::time::{Duration, SystemTime};

use super::*;

#[test]
fn a_long_reply_gets_fewer_copies_and_the_pages_stay_a_few_times_the_body() {
    let small = Responses::new(b"hello world\n", SystemTime::UNIX_EPOCH).expect("replies");
    assert_eq!(small.copies(Reply::Ok), MAX_RUN);
    assert!(!small.has_body_apart(Reply::Ok));
    // The longest body still laid out on the pages: one copy of each reply carrying it.
    let body = vec![b'x'; BODY_APART];
    let long = Responses::new(&body, SystemTime::UNIX_EPOCH).expect("replies");
    assert_eq!(long.copies(Reply::Ok), 1);
    assert!(!long.has_body_apart(Reply::Ok));
    assert_eq!(long.copies(Reply::Head), MAX_RUN, "a head alone is short");
    let one = long.run(Reply::Ok, 1);
    assert!(one.ends_with(&body) && one.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // Three replies carry the body (200, 200 keep-alive, 200 close), on
    // each page, beside the other replies' copies.
    let page_bytes = |responses: &Responses| responses.pages.iter().map(|page| page.len()).sum::<usize>();
    let bytes = page_bytes(&long) - page_bytes(&small);
    assert!(bytes < PAGES * 4 * body.len(), "{bytes} bytes of pages for a body of {}", body.len());
    let mid = Responses::new(&[b'y'; 1000], SystemTime::UNIX_EPOCH).expect("replies");
    let len = mid.run(Reply::Ok, 1).len();
    assert_eq!(mid.copies(Reply::Ok), RUN_BYTES / len);
    assert_eq!(mid.run(Reply::Ok, mid.copies(Reply::Ok)).len(), len * mid.copies(Reply::Ok));
}

/// Until 2026-12-06 a long body was laid out in three replies on each
/// of the 4 pages: 12 MB of pages for a 1 MB body, 1.2 GB for 100 MB.
#[test]
fn the_pages_do_not_grow_with_a_long_body() {
    let page_bytes = |responses: &Responses| responses.pages.iter().map(|page| page.len()).sum::<usize>();
    let small = Responses::new(b"hello world\n", SystemTime::UNIX_EPOCH).expect("replies");
    for len in [BODY_APART + 1, 1 << 20, 10 << 20] {
        let long = Responses::new(&vec![b'x'; len], SystemTime::UNIX_EPOCH).expect("replies");
        let bytes = page_bytes(&long);
        // The heads alone, fewer than the small body's 32 copies of whole replies.
        assert!(bytes < page_bytes(&small), "{bytes} bytes of pages for a body of {len}");
    }
}

#[test]
fn a_long_body_is_sent_apart_after_each_head() {
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let now = at(EPOCH_PLUS);
    let copied = Responses::new(&body, now).expect("replies");
    let shared: Arc<[u8]> = Arc::from(body.clone());
    let sharing = Responses::sharing(Arc::clone(&shared), now).expect("replies");
    for responses in [&copied, &sharing] {
        for reply in [Reply::Ok, Reply::OkKeepAlive, Reply::OkClose] {
            assert!(responses.has_body_apart(reply));
            assert_eq!(responses.copies(reply), 1);
            let (head, apart) = responses.slices(reply, 1);
            assert_eq!(head, responses.head_of(reply));
            assert_eq!([head, apart].concat(), standalone(reply, &body, now), "{reply:?}");
            assert_eq!(responses.len_of(reply), head.len() + body.len());
        }
        // A HEAD's reply has no body to hold apart: laid out as before.
        assert!(!responses.has_body_apart(Reply::Head));
        assert_eq!(responses.slices(Reply::Head, MAX_RUN).1, b"");
        assert!(text(responses.run(Reply::Head, 1)).contains("Content-Length: 100000\r\n"));
        // Error replies keep their short bodies on the pages.
        assert_eq!(responses.slices(Reply::BadRequest, 1).1, b"");
    }
    // Shared: the handler's buffer itself, not a copy.
    assert_eq!(sharing.slices(Reply::Ok, 1).1.as_ptr(), shared.as_ptr());
}

#[test]
fn the_date_moves_on_the_heads_of_a_long_body_and_the_body_stays() {
    let body = vec![b'z'; 50_000];
    let mut responses = Responses::new(&body, at(EPOCH_PLUS)).expect("replies");
    let before = responses.slices(Reply::Ok, 1).1.as_ptr();
    responses.refresh(at(EPOCH_PLUS + 1));
    let (head, apart) = responses.slices(Reply::Ok, 1);
    assert!(text(head).contains("08:49:38 GMT"));
    assert_eq!(apart.as_ptr(), before, "every page's heads share the one body");
    assert_eq!(apart, &body[..]);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("responses are ASCII")
}

const EPOCH_PLUS: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[test]
fn ok_reply_is_complete() {
    let responses = Responses::new(b"hello world\n", at(EPOCH_PLUS)).expect("replies");
    assert_eq!(
        text(responses.run(Reply::Ok, 1)),
        "HTTP/1.1 200 OK\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
    );
}

#[test]
fn head_and_connection_variants() {
    let responses = Responses::new(b"abc", at(EPOCH_PLUS)).expect("replies");
    let head = text(responses.run(Reply::HeadClose, 1));
    assert!(head.contains("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    assert!(head.ends_with("\r\n\r\n"));
    let keep = text(responses.run(Reply::OkKeepAlive, 1));
    assert!(keep.contains("Connection: keep-alive\r\n\r\nabc"));
    assert_eq!(text(responses.run(Reply::Continue, 1)), "HTTP/1.1 100 Continue\r\n\r\n");
    let bad = text(responses.run(Reply::HeaderTooLarge, 1));
    assert!(bad.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert!(bad.ends_with("Connection: close\r\n\r\nRequest Header Fields Too Large\n"));
}

#[test]
fn a_standalone_reply_is_dated_and_complete() {
    let text = text(&standalone(Reply::ServiceUnavailable, b"", at(EPOCH_PLUS)));
    assert_eq!(
        text,
        "HTTP/1.1 503 Service Unavailable\r\nServer: ringmaster\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n"
    );
}

#[test]
fn runs_are_back_to_back_copies() {
    let responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
    let one = responses.run(Reply::Ok, 1).to_vec();
    let many = responses.run(Reply::Ok, MAX_RUN);
    assert_eq!(many.len(), one.len() * MAX_RUN);
    assert!(many.chunks(one.len()).all(|copy| copy == one));
}

#[test]
fn date_moves_to_a_free_page_only() {
    let mut responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
    let hold = responses.hold();
    responses.refresh(at(EPOCH_PLUS + 1));
    assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:38 GMT"));
    // The held page still carries the old date.
    assert!(text(&responses.pages[usize::from(hold.0)]).contains("08:49:37 GMT"));
    // Round the pages until the next is the held one: the date skips it.
    // Before, it waited there for as long as the send held it (a client
    // that does not read: up to the idle timeout).
    for second in 2..=4 {
        responses.refresh(at(EPOCH_PLUS + second));
    }
    assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:41 GMT"));
    assert_ne!(responses.current, usize::from(hold.0));
    assert!(text(&responses.pages[usize::from(hold.0)]).contains("08:49:37 GMT"));
    responses.release(hold);
}

#[test]
fn date_waits_only_while_every_other_page_is_held() {
    let mut responses = Responses::new(b"x", at(EPOCH_PLUS)).expect("replies");
    let mut holds = vec![responses.hold()];
    for second in 1..PAGES as u64 {
        responses.refresh(at(EPOCH_PLUS + second));
        holds.push(responses.hold());
    }
    // Every page held, the current one too: the date waits.
    responses.refresh(at(EPOCH_PLUS + 10));
    assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:40 GMT"));
    // One page let go, the date moves there.
    let freed = holds.remove(1);
    responses.release(freed);
    responses.refresh(at(EPOCH_PLUS + 10));
    assert_eq!(responses.current, usize::from(freed.0));
    assert!(text(responses.run(Reply::Ok, 1)).contains("08:49:47 GMT"));
    for hold in holds {
        responses.release(hold);
    }
}
