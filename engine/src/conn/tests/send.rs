//! Sends: partial, failed.

use super::*;

#[test]
fn a_partial_send_goes_on_from_where_it_stopped() {
    let mut h = Harness::new();
    h.input(&[GET, GET].concat());
    let bytes = h.start_send().expect("send");
    h.complete(&bytes, 10);
    assert_eq!(h.answered, 0, "nothing answered until the send is whole");
    let rest = h.start_send().expect("the rest");
    assert_eq!(rest, bytes[10..]);
    h.complete(&rest, rest.len());
    assert_eq!(h.answered, 2);
    assert_eq!(h.sent, bytes);
}

#[test]
fn a_failed_send_closes() {
    let mut h = Harness::new();
    h.input(GET);
    h.start_send().expect("send");
    h.fail_send();
    assert!(h.conn.is_closed());
    assert!(h.start_send().is_none(), "nothing is sent on a closed connection");
}
