//! One reply's bytes: its head (the date left blank) and its body, and a
//! reply on its own, dated, for the master.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::date::format_date;
use super::DATE_LEN;
use crate::http::Reply;

/// One reply on its own, dated `now`, for a process that sends one now and
/// then (the master refusing a connection); it allocates.
pub fn standalone(reply: Reply, body: &[u8], now: SystemTime) -> Vec<u8> {
    let (mut bytes, date_at, body_part) = format_reply(reply, body);
    if let Some(at) = date_at {
        bytes[at..at + DATE_LEN].copy_from_slice(&format_date(now));
    }
    bytes.extend_from_slice(body_part);
    bytes
}

/// The head of one reply, where its date goes, and its body.
pub(super) fn format_reply(reply: Reply, body: &[u8]) -> (Vec<u8>, Option<usize>, &[u8]) {
    let (code, reason) = reply.status();
    if reply == Reply::Continue {
        return (format!("HTTP/1.1 {code} {reason}\r\n\r\n").into_bytes(), None, &[]);
    }
    let mut head = format!("HTTP/1.1 {code} {reason}\r\nServer: ringmaster\r\nDate: ");
    let date_at = head.len();
    head.push_str(&" ".repeat(DATE_LEN));
    let error_body = error_body(reply);
    let (content_length, body_part): (usize, &[u8]) = match reply {
        Reply::Ok | Reply::OkKeepAlive | Reply::OkClose => (body.len(), body),
        Reply::Head | Reply::HeadKeepAlive | Reply::HeadClose => (body.len(), &[]),
        _ => (error_body.len(), error_body),
    };
    let _ = write!(head, "\r\nContent-Type: text/plain\r\nContent-Length: {content_length}\r\n");
    match reply {
        Reply::OkKeepAlive | Reply::HeadKeepAlive => head.push_str("Connection: keep-alive\r\n"),
        _ if reply.closes() => head.push_str("Connection: close\r\n"),
        _ => {}
    }
    head.push_str("\r\n");
    (head.into_bytes(), Some(date_at), body_part)
}

/// The body of an error or health reply: its reason phrase (or state) and a newline.
fn error_body(reply: Reply) -> &'static [u8] {
    match reply {
        Reply::BadRequest => b"Bad Request\n",
        Reply::RequestTimeout => b"Request Timeout\n",
        Reply::ContentTooLarge => b"Content Too Large\n",
        Reply::UriTooLong => b"URI Too Long\n",
        Reply::ExpectationFailed => b"Expectation Failed\n",
        Reply::HeaderTooLarge => b"Request Header Fields Too Large\n",
        Reply::NotImplemented => b"Not Implemented\n",
        Reply::ServiceUnavailable => b"Service Unavailable\n",
        Reply::VersionNotSupported => b"HTTP Version Not Supported\n",
        Reply::HealthReady => b"ready\n",
        Reply::HealthDraining => b"draining\n",
        _ => b"",
    }
}
