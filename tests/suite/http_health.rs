//! `--health-path`: every worker answers it itself, `200 ready` while it
//! serves, before any handler sees the request; other paths are untouched.

use crate::util;

use util::*;

#[test]
fn the_health_path_answers_ready_and_closes() {
    let s = Server::start(&["--workers", "2", "--health-path", "/healthz"]);
    for _ in 0..4 {
        let mut c = s.connect();
        let resp = c.request(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "ready\n"));
        assert!(resp.has_connection("close"), "{resp:?}");
        c.expect_closed();
    }
    // Everything else is the handler's: the fixed body here.
    let mut c = s.connect();
    c.get_ok();
    let other = c.request(b"GET /healthz/more HTTP/1.1\r\nHost: a\r\n\r\n");
    check_ok(&other);
}

#[test]
fn a_health_path_must_be_a_path() {
    let (status, _, err) = util::procs::run_to_exit(&["--health-path", "healthz"], START_TIMEOUT);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("is not a path"), "{err}");
}
