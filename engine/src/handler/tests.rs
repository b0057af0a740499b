//! Requests read and responses written, as a handler sees them.

use std::fmt::Write as _;

use super::*;

#[test]
fn a_request_splits_its_target_and_finds_headers_by_any_case() {
    let headers = [Header { name: "Content-Type", value: b"text/plain" }];
    let req = Request {
        method: "GET",
        target: "/a/b?x=1&y",
        version: Version::Http11,
        headers: &headers,
        body: b"",
        peer: None,
    };
    assert_eq!((req.path(), req.query()), ("/a/b", Some("x=1&y")));
    assert_eq!(req.header("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(req.header("accept"), None);
    let bare = Request { target: "/", ..req };
    assert_eq!((bare.path(), bare.query()), ("/", None));
}

#[test]
fn an_absolute_uri_target_has_the_path_of_its_origin_form() {
    let req = Request { method: "GET", target: "", version: Version::Http11, headers: &[], body: b"", peer: None };
    for (target, path, query) in [
        ("http://a.example:8080/a/b?x=1", "/a/b", Some("x=1")),
        ("https://a/", "/", None),
        ("http://a", "/", None),
        ("http://a?x", "/", Some("x")),
        ("http://[::1]:80/p", "/p", None),
        ("*", "*", None),
        ("/p://q", "/p://q", None),
        // A fragment, which the parser refuses (400), would be no part
        // of the path or the query, as the host ends before it: until
        // 2026-12-07 `http://a#/admin` had the path `/admin`.
        ("http://a#/admin", "/", None),
        ("http://a/b#c", "/b", None),
        ("/a#b", "/a", None),
        ("/a#b?c=1", "/a", None),
        ("/a?c=1#f", "/a", Some("c=1")),
        ("http://a?x#/y", "/", Some("x")),
    ] {
        let req = Request { target, ..req };
        assert_eq!((req.path(), req.query()), (path, query), "{target}");
        assert_eq!(req.target(), target);
    }
}

#[test]
fn the_host_of_an_absolute_uri_wins_over_the_host_field() {
    let headers = [Header { name: "Host", value: b"field.example" }];
    let req =
        Request { method: "GET", target: "/", version: Version::Http11, headers: &headers, body: b"", peer: None };
    assert_eq!(req.host(), Some(&b"field.example"[..]), "origin-form: the Host field");
    for (target, host) in [
        ("http://a.example:8080/a/b?x=1", "a.example:8080"),
        ("https://a/", "a"),
        ("http://a", "a"),
        ("http://a?x", "a"),
        ("http://a#f", "a"),
        ("http://user:pw@b.example/p", "b.example"),
        ("http://[::1]:80/p", "[::1]:80"),
    ] {
        assert_eq!(Request { target, ..req }.host(), Some(host.as_bytes()), "{target}");
    }
    assert_eq!(Request { target: "*", ..req }.host(), Some(&b"field.example"[..]), "asterisk-form");
    let none = Request { headers: &[], version: Version::Http10, ..req };
    assert_eq!(none.host(), None);
}

#[test]
fn a_response_keeps_its_fields_and_body_in_the_buffers_given() {
    let (mut head, mut body) = ([0u8; 64], [0u8; 16]);
    let mut res = Response::new(&mut head, &mut body);
    res.status(201).header("X-A", "1").header("Content-Length", "99").body(b"ab");
    write!(res, "{}", 7).expect("fits");
    let written = res.parts();
    assert_eq!(written.status, 201);
    assert_eq!(written.fields, b"X-A: 1\r\n", "the engine's own fields are ignored");
    assert_eq!(written.body, b"ab7");
    assert!(!written.broken);
}

#[test]
fn too_much_or_invalid_breaks_the_response() {
    let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
    let mut res = Response::new(&mut head, &mut body);
    res.body(b"12345");
    assert!(res.parts().broken, "over the body buffer");
    let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
    let mut res = Response::new(&mut head, &mut body);
    res.header("X-Bad", "a\r\nInjected: yes");
    assert!(res.parts().broken, "CR LF in a value");
    let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
    let mut res = Response::new(&mut head, &mut body);
    res.header("Bad Name", "v");
    assert!(res.parts().broken, "a space in a name");
    let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
    let mut res = Response::new(&mut head, &mut body);
    res.status(99);
    assert!(res.parts().broken, "not a final status");
}
