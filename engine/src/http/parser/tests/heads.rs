//! Heads: the request line, the fields that matter, versions, limits,
//! malformed input.

use super::*;

#[test]
fn keep_alive_is_the_http11_default() {
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), [Reply::Ok]);
}

#[test]
fn connection_close_closes() {
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"), [Reply::OkClose]);
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n"), [Reply::OkClose]);
}

#[test]
fn field_names_match_in_any_case_and_values_lose_their_ows() {
    let input = b"POST / HTTP/1.1\r\nhOsT: a\r\nEXPECT: \t100-Continue \r\ncontent-LENGTH:  3 \r\nCONNECTION: Keep-Alive ,CLOSE\r\n\r\nabc";
    assert_eq!(replies(input), [Reply::Continue, Reply::OkClose]);
    let input = b"POST / HTTP/1.1\r\nHOST: a\r\ntransfer-ENCODING:  Chunked\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(replies(input), [Reply::Ok]);
    // A name one letter off is just another field.
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\nHosts: b\r\nConnectionx: close\r\n\r\n"), [Reply::Ok]);
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), [Reply::BadRequest]);
}

#[test]
fn connect_is_not_implemented() {
    assert_eq!(replies(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), [Reply::NotImplemented]);
    assert_eq!(replies(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), [Reply::Ok]);
}

#[test]
fn request_target_forms_fit_their_methods() {
    // RFC 9112 §3.2.4: asterisk-form is for OPTIONS only; §3.2.3:
    // authority-form for CONNECT only (refused with 501 when well formed).
    let mut wrong = Vec::new();
    let mut check = |line: &str, want: Reply| {
        let request = format!("{line}\r\nHost: a\r\n\r\n");
        let got = replies(request.as_bytes());
        if got != [want] {
            wrong.push(format!("{line:?}: {got:?}, want {want:?}"));
        }
    };
    for line in [
        "GET * HTTP/1.1",
        "POST * HTTP/1.1",
        "DELETE * HTTP/1.1",
        "GET * HTTP/1.0",
        "GET * HTTP/1.2",
        "GET example.com:80 HTTP/1.1",
        "GET example.com:80 HTTP/1.2",
        "POST localhost:8080 HTTP/1.1",
        "OPTIONS example.com:443 HTTP/1.1",
        "GET [::1]:80 HTTP/1.1",
        "GET index.html HTTP/1.1",
        "GET ?x=1 HTTP/1.1",
        "OPTIONS ** HTTP/1.1",
        "GET http:/a HTTP/1.1",
        "GET 1http://a/ HTTP/1.1",
        // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid.
        "GET http:///a HTTP/1.1",
        "GET http:// HTTP/1.1",
        "GET HTTPS://?x HTTP/1.1",
        "GET http://:80/a HTTP/1.1",
        "GET http://user@/a HTTP/1.1",
        "GET http://user@:80 HTTP/1.1",
        "GET https://#f HTTP/1.1",
        "GET http:///a HTTP/1.2",
    ] {
        check(line, Reply::BadRequest);
    }
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error (nginx: 400).
    // And an authority must be a host and perhaps a port (nginx: 400).
    // Until 2026-12-07 these got 200.
    for line in [
        "GET http://user@a/ HTTP/1.1",
        "GET http://user:pw@a:80/b HTTP/1.1",
        "GET HTTPS://u@a HTTP/1.1",
        "GET http://a:b/ HTTP/1.1",
        "GET http://a:1:2/ HTTP/1.1",
        "GET http://[::1/ HTTP/1.1",
        "GET http://[::1]x/ HTTP/1.1",
        "GET http://a]/ HTTP/1.1",
        "GET http://a b/ HTTP/1.1",
        "GET http://[]/ HTTP/1.1",
        "GET ftp://u@v@a/ HTTP/1.1",
        "OPTIONS http://a:80x HTTP/1.1",
    ] {
        check(line, Reply::BadRequest);
    }
    check("HEAD * HTTP/1.1", Reply::BadRequest);
    for line in [
        "OPTIONS * HTTP/1.1",
        "OPTIONS / HTTP/1.1",
        "GET / HTTP/1.1",
        "GET //a/b?c HTTP/1.1",
        "GET /a:b HTTP/1.1",
        "GET http://a/b HTTP/1.1",
        "GET HTTPS://a:443/b?c HTTP/1.1",
        "GET http://a HTTP/1.1",
        "OPTIONS http://a HTTP/1.1",
        "GET svn+ssh.x-y://a/ HTTP/1.1",
        "GET http://a/b HTTP/1.2",
        "GET http://a:80?x HTTP/1.1",
        "GET http://[v1.x:y]/ HTTP/1.1",
        "GET http://127.0.0.1:8080/a HTTP/1.1",
        // userinfo is an error in http(s) URIs alone.
        "GET ftp://user:pw@a/b HTTP/1.1",
        "GET http://[::1]/b HTTP/1.1",
        "GET http://a:/b HTTP/1.1",
        // Only http and https say their host may not be empty.
        "GET file:///etc/x HTTP/1.1",
    ] {
        check(line, Reply::Ok);
    }
    check("HEAD http://a/ HTTP/1.1", Reply::Head);
    // No form carries a fragment (RFC 9112 §3.2): the request line is
    // invalid (§3: SHOULD 400; nginx refuses `http://a#/admin`). Until
    // 2026-12-07 the fragment was cut off and these got 200.
    for line in [
        "GET http://a#/admin HTTP/1.1",
        "GET http://a:80#x HTTP/1.1",
        "GET http://a/b#c HTTP/1.1",
        "GET http://a?x#/y HTTP/1.1",
        "GET /a#b HTTP/1.1",
        "GET /# HTTP/1.1",
        "GET /a?c=1#f HTTP/1.2",
        "OPTIONS *#x HTTP/1.1",
        "CONNECT a:443#x HTTP/1.1",
    ] {
        check(line, Reply::BadRequest);
    }
    check("HEAD /a#b HTTP/1.1", Reply::BadRequest);
    for line in ["CONNECT example.com:443 HTTP/1.1", "CONNECT [::1]:8443 HTTP/1.1", "CONNECT 192.0.2.1:80 HTTP/1.1"] {
        check(line, Reply::NotImplemented);
    }
    // A CONNECT whose target is no authority-form is malformed (400)
    // before it is a method this server does not do (501).
    for line in [
        "CONNECT * HTTP/1.1",
        "CONNECT / HTTP/1.1",
        "CONNECT example.com HTTP/1.1",
        "CONNECT example.com: HTTP/1.1",
        "CONNECT :443 HTTP/1.1",
        "CONNECT example.com:44x HTTP/1.1",
        "CONNECT http://example.com:443 HTTP/1.1",
        "CONNECT user@example.com:443 HTTP/1.1",
        "CONNECT example.com:443/x HTTP/1.1",
    ] {
        check(line, Reply::BadRequest);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn http10_gets_no_100_continue() {
    let input = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(replies(input), [Reply::OkClose]);
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    assert_eq!(replies(b"GET / HTTP/1.0\r\n\r\n"), [Reply::OkClose]);
    assert_eq!(replies(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), [Reply::OkKeepAlive]);
    assert_eq!(replies(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), [Reply::HeadKeepAlive]);
}

#[test]
fn http_versions_past_1_1() {
    assert_eq!(replies(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), [Reply::Ok], "served as 1.1");
    assert_eq!(replies(b"HEAD / HTTP/1.2\r\nHost: a\r\n\r\n"), [Reply::Head]);
    assert_eq!(replies(b"GET / HTTP/1.2\r\n\r\n"), [Reply::BadRequest], "1.1 needs a Host");
    assert_eq!(replies(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), [Reply::VersionNotSupported]);
    assert_eq!(replies(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), [Reply::VersionNotSupported]);
}

#[test]
fn head_gets_headers_only() {
    assert_eq!(replies(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), [Reply::Head]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(replies(input), [Reply::Ok, Reply::Head, Reply::OkClose]);
}

#[test]
fn partial_head_needs_more_and_keeps_the_bytes() {
    let mut parser = RequestParser::new();
    let (got, left) = run(&mut parser, b"GET / HTTP/1.1\r\nHo", &LIMITS);
    assert!(got.is_empty());
    assert_eq!(left, 18);
}

#[test]
fn host_is_required_once_in_http11() {
    assert_eq!(replies(b"GET / HTTP/1.1\r\n\r\n"), [Reply::BadRequest]);
    assert_eq!(replies(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), [Reply::BadRequest]);
}

#[test]
fn host_must_be_one_valid_field_in_any_version() {
    // RFC 9112 §3.2: 400 for "any request message that contains more than
    // one Host header field line or a Host header field with an invalid
    // field value", HTTP/1.0 included.
    assert_eq!(replies(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), [Reply::BadRequest]);
    // The value is a host and perhaps a port (RFC 3986 §3.2.2): until
    // 2026-12-07 only its bytes were checked, and the second line got 200.
    for bad in [
        "a b", "a/b", "a@b", "a\"b", "a<b>", "a\\b", "a?b", "a#b", "a{b}", "a:b", "a:1:2", "[::1", "a]", "[::1]x",
        "::1", ":80", "[]", "a:80 x",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert_eq!(replies(request.as_bytes()), [Reply::BadRequest], "{bad:?}");
        let request = format!("GET / HTTP/1.0\r\nHost: {bad}\r\n\r\n");
        assert_eq!(replies(request.as_bytes()), [Reply::BadRequest], "1.0 {bad:?}");
    }
    for good in [
        "",
        "a",
        "example.com:8080",
        "[::1]:80",
        "127.0.0.1",
        "xn--bcher-kva.example",
        "a_b~c",
        "%41.b",
        "a!$&'()*+,;=b",
        "a:",
        "[v1.fe:x]:443",
        "a.b.:8080",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
        assert_eq!(replies(request.as_bytes()), [Reply::Ok], "{good:?}");
    }
}

#[test]
fn header_limits() {
    let limits = Limits { max_header: 64, max_body: 10 };
    let long = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    assert_eq!(run(&mut RequestParser::new(), long, &limits).0, [Reply::HeaderTooLarge]);
    // Still incomplete at the limit: refused without waiting for the rest.
    let partial = [b'a'; 64];
    let mut partial_request = b"GET / HTTP/1.1\r\nX: ".to_vec();
    partial_request.extend_from_slice(&partial);
    assert_eq!(run(&mut RequestParser::new(), &partial_request, &limits).0, [Reply::HeaderTooLarge]);
    // A request line that does not end within the limit: its URI is too long.
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(64));
    assert_eq!(run(&mut RequestParser::new(), long_uri.as_bytes(), &limits).0, [Reply::UriTooLong]);
    let unfinished_uri = format!("GET /{}", "u".repeat(64));
    assert_eq!(run(&mut RequestParser::new(), unfinished_uri.as_bytes(), &limits).0, [Reply::UriTooLong]);
    // A request line that ends within it, with fields that do not: 431.
    let line_fits = format!("GET /{} HTTP/1.1\r\nX: {}\r\n\r\n", "u".repeat(40), "v".repeat(30));
    assert_eq!(run(&mut RequestParser::new(), line_fits.as_bytes(), &limits).0, [Reply::HeaderTooLarge]);
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for _ in 0..MAX_HEADERS {
        many.extend_from_slice(b"X: y\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(replies(&many), [Reply::HeaderTooLarge]);
}

#[test]
fn malformed_requests_are_bad() {
    for bad in
        [&b"GARBAGE\r\n\r\n"[..], b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\x00\x01\x02\r\n\r\n"]
    {
        assert_eq!(replies(bad), [Reply::BadRequest], "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_refused_head_is_judged_by_its_own_method() {
    let limits = Limits { max_header: 64, max_body: 10 };
    let head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let long_line = format!("GET /{}", "u".repeat(64));
    let long_head_line = format!("HEAD /{}", "u".repeat(64));
    let long_fields = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(64));
    let long_head_fields = format!("\r\nHEAD / HTTP/1.1\r\nX: {}", "v".repeat(64));
    for (before, refused, reply, is_head) in [
        (&head[..], long_line.as_bytes(), Reply::UriTooLong, false),
        (head, long_fields.as_bytes(), Reply::HeaderTooLarge, false),
        (head, b"GET / HTTP/1.1\r\nBad Field: x\r\n\r\n", Reply::BadRequest, false),
        (head, b"\x00\x01\r\n\r\n", Reply::BadRequest, false),
        (get, long_head_line.as_bytes(), Reply::UriTooLong, true),
        (get, long_head_fields.as_bytes(), Reply::HeaderTooLarge, true),
        (get, b"HEAD / HTTP/1.1\r\nBad Field: x\r\n\r\n", Reply::BadRequest, true),
        (get, b"HEAD / HTTP/2.0\r\n\r\n", Reply::VersionNotSupported, true),
    ] {
        let mut parser = RequestParser::new();
        let input = [before, refused].concat();
        let shown = String::from_utf8_lossy(&input).into_owned();
        let ok = if before == head { Reply::Head } else { Reply::Ok };
        assert_eq!(run(&mut parser, &input, &limits).0, [ok, reply], "{shown:?}");
        assert_eq!(parser.answering_head(), is_head, "{shown:?}");
    }
}
