//! The clients' books: lines split and timed, replies owed and held,
//! eviction, backlogs and the ends of input, without a socket.

use super::*;

fn connection() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"))
}

/// Adopts a client and starts its receive, as the master does.
fn adopt(clients: &mut Clients, now: Instant) -> ClientId {
    let id = clients.adopt(connection(), now).id.expect("room");
    assert!(clients.next_ops(id).0.recv.is_some());
    id
}

/// Delivers `bytes` as the kernel would into the receive armed for `id`.
fn deliver(clients: &mut Clients, id: ClientId, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
    let client = clients.client(id).expect("live client");
    client.input[client.len..client.len + bytes.len()].copy_from_slice(bytes);
    let lines = clients.received(id, bytes.len() as i32, now);
    clients.next_ops(id);
    lines
}

#[test]
fn lines_are_split_and_partial_lines_wait() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    assert_eq!(deliver(&mut clients, id, b"status\r\nsca", t), [b"status".to_vec()]);
    assert_eq!(deliver(&mut clients, id, b"le 2\n", t), [b"scale 2".to_vec()]);
}

#[test]
fn a_partial_line_has_line_timeout_to_finish() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    deliver(&mut clients, id, b"sta", t + Duration::from_secs(1));
    // More bytes of the same line do not buy more time.
    deliver(&mut clients, id, b"t", t + Duration::from_secs(5));
    assert!(clients.expire(t + Duration::from_millis(5_900)).is_empty());
    let expired = clients.expire(t + Duration::from_secs(6));
    assert_eq!(expired, [(id, Cancel { recv: true, send: false })]);
    // Freed once the cancelled receive comes back.
    assert_eq!(clients.received(id, -libc::ECANCELED, t + Duration::from_secs(6)), Vec::<Vec<u8>>::new());
    assert!(clients.next_ops(id).1.is_some(), "the connection is handed back to be closed");
    assert_eq!(clients.active(), 0);
}

#[test]
fn an_idle_client_is_closed_after_idle_timeout_and_commands_renew_it() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    let later = t + Duration::from_secs(50);
    deliver(&mut clients, id, b"status\n", later);
    assert!(clients.expire(t + IDLE_TIMEOUT).is_empty(), "a whole line renews the idle time");
    assert_eq!(clients.expire(later + IDLE_TIMEOUT).len(), 1);
}

#[test]
fn a_reply_nobody_reads_times_out() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    deliver(&mut clients, id, b"status\n", t);
    clients.reply(id, "ok", t);
    assert!(clients.next_ops(id).0.send.is_some());
    clients.sent(id, 1, t + Duration::from_secs(3));
    assert!(clients.next_ops(id).0.send.is_some(), "the rest of the reply");
    assert!(clients.expire(t + Duration::from_secs(7)).is_empty(), "progress renews it");
    assert_eq!(clients.expire(t + Duration::from_secs(8)), [(id, Cancel { recv: true, send: true })]);
    clients.reply(id, "more", t + Duration::from_secs(8));
    clients.sent(id, -libc::ECANCELED, t + Duration::from_secs(8));
    clients.received(id, -libc::ECANCELED, t + Duration::from_secs(8));
    assert!(!clients.has_pending_output(), "nothing more goes to a closed client");
    assert!(clients.next_ops(id).1.is_some());
}

#[test]
fn a_full_house_evicts_the_client_idle_the_longest() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let ids: Vec<ClientId> =
        (0..MAX_CLIENTS).map(|i| adopt(&mut clients, t + Duration::from_millis(i as u64))).collect();
    // The first one is busy (it just sent a command); the second has been idle the longest.
    deliver(&mut clients, ids[0], b"status\n", t + Duration::from_secs(1));
    let newcomer = clients.adopt(connection(), t + Duration::from_secs(2));
    assert_eq!(newcomer.evicted, Some((ids[1], Cancel { recv: true, send: false })));
    let newcomer = newcomer.id.expect("the newcomer gets in");
    assert_eq!(clients.active(), MAX_CLIENTS);
    assert!(clients.next_ops(newcomer).0.recv.is_some());
    // The evicted client's buffer stays until its receive comes back.
    assert!(clients.next_ops(ids[1]).1.is_none());
    clients.received(ids[1], -libc::ECANCELED, t);
    assert!(clients.next_ops(ids[1]).1.is_some());
}

#[test]
fn a_client_owed_a_reply_is_not_evicted() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let ids: Vec<ClientId> =
        (0..MAX_CLIENTS).map(|i| adopt(&mut clients, t + Duration::from_millis(i as u64))).collect();
    // The oldest asked for an upgrade: its reply comes with the outcome.
    deliver(&mut clients, ids[0], b"upgrade\n", t);
    clients.hold(ids[0]);
    let newcomer = clients.adopt(connection(), t + Duration::from_secs(2));
    assert_eq!(newcomer.evicted.map(|(id, _)| id), Some(ids[1]), "the oldest idle one makes room");
    clients.release(ids[0], "ok upgraded", t + Duration::from_secs(3));
    assert!(clients.next_ops(ids[0]).0.send.is_some(), "the outcome goes out");
}

#[test]
fn an_endless_line_gets_an_error_then_the_close() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    clients.client(id).expect("live").input.fill(b'x');
    assert!(clients.received(id, MAX_LINE as i32, t).is_empty());
    let (ops, closed) = clients.next_ops(id);
    assert!(closed.is_none());
    assert!(ops.send.is_some(), "the error goes out first");
    assert!(ops.recv.is_some(), "what else comes is read, not left to reset the connection");
    let len = b"error: line too long\n".len();
    clients.sent(id, len as i32, t);
    // More of the line, even a line end: dropped, no command.
    deliver(&mut clients, id, b"xxxx\nstatus\n", t);
    assert!(clients.next_ops(id).1.is_none(), "open until the client's end");
    assert!(clients.received(id, 0, t).is_empty());
    assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
}

#[test]
fn an_endless_line_that_does_not_end_is_closed_after_the_line_timeout() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    clients.client(id).expect("live").input.fill(b'x');
    clients.received(id, MAX_LINE as i32, t);
    clients.next_ops(id);
    clients.sent(id, b"error: line too long\n".len() as i32, t);
    deliver(&mut clients, id, b"xxxx", t + LINE_TIMEOUT / 2);
    assert!(clients.expire(t + LINE_TIMEOUT / 2).is_empty());
    let expired = clients.expire(t + LINE_TIMEOUT);
    assert_eq!(expired.len(), 1, "the rest had a line's time to end");
}

#[test]
fn a_reply_owed_comes_first_and_the_client_waits_without_idling() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    deliver(&mut clients, id, b"upgrade\nstatus\n", t);
    clients.hold(id);
    clients.reply(id, "{status}", t);
    assert!(clients.next_ops(id).0.send.is_none(), "nothing goes out before the owed reply");
    assert!(clients.expire(t + IDLE_TIMEOUT * 2).is_empty(), "waiting is not idling");
    clients.release(id, "ok upgraded", t + IDLE_TIMEOUT * 2);
    assert!(clients.next_ops(id).0.send.is_some(), "the replies go out");
    let expected = b"ok upgraded\n{status}\n";
    assert_eq!(clients.client(id).expect("live").sending, expected);
    clients.sent(id, expected.len() as i32, t + IDLE_TIMEOUT * 2);
    assert!(!clients.has_pending_output());
    // Released once: a second release says nothing more.
    clients.release(id, "again", t);
    assert!(clients.next_ops(id).0.send.is_none());
}

#[test]
fn commands_after_an_owed_reply_wait_for_it_and_nothing_more_is_read() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    let bytes = b"upgrade\nreload\nstatus\n";
    let client = clients.client(id).expect("live client");
    client.input[..bytes.len()].copy_from_slice(bytes);
    // As the master runs them: the first holds, the rest wait behind it.
    let mut lines = clients.received(id, bytes.len() as i32, t).into_iter();
    assert_eq!(lines.next().as_deref(), Some(&b"upgrade"[..]));
    clients.hold(id);
    for line in lines {
        assert!(clients.must_wait(id));
        clients.defer(id, line);
    }
    assert!(clients.take_deferred(id).is_empty(), "none runs before the outcome");
    let (ops, done) = clients.next_ops(id);
    assert!(ops.recv.is_none() && done.is_none(), "nothing more is read while commands wait");
    clients.release(id, "ok upgraded", t);
    assert!(!clients.must_wait(id));
    assert_eq!(clients.take_deferred(id), [b"reload".to_vec(), b"status".to_vec()]);
    assert!(clients.next_ops(id).0.recv.is_some(), "read again once they run");
}

#[test]
fn commands_wait_while_the_client_has_not_taken_a_backlog_of_replies() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    let lines = deliver(&mut clients, id, b"status\nstatus\nstatus\n", t);
    let reply = "x".repeat(MAX_BACKLOG / 2);
    let mut deferred = 0;
    for line in lines {
        if clients.must_wait(id) {
            clients.defer(id, line);
            deferred += 1;
        } else {
            clients.reply(id, &reply, t);
        }
    }
    assert_eq!(deferred, 1, "the third waits for the client to take the first two");
    let (ops, _) = clients.next_ops(id);
    assert!(ops.send.is_some() && ops.recv.is_none(), "and nothing more is read meanwhile");
    assert!(clients.take_deferred(id).is_empty());
    clients.sent(id, 2, t);
    assert!(clients.take_deferred(id).is_empty(), "still a backlog");
    clients.next_ops(id);
    clients.sent(id, reply.len() as i32, t);
    assert_eq!(clients.take_deferred(id), [b"status".to_vec()], "runs once it is taken");
}

#[test]
fn a_last_line_without_its_end_is_a_command_at_the_end_of_input() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    assert!(deliver(&mut clients, id, b"status\r", t).is_empty(), "a partial line waits");
    assert_eq!(clients.received(id, 0, t), [b"status".to_vec()], "the end of input finishes it");
    clients.reply(id, "{status}", t);
    let (ops, closed) = clients.next_ops(id);
    assert!(ops.send.is_some() && ops.recv.is_none() && closed.is_none(), "the reply goes out, no more input");
    clients.sent(id, b"{status}\n".len() as i32, t);
    assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
    // Nothing pending at the end: no command.
    let other = adopt(&mut clients, t);
    assert!(clients.received(other, 0, t).is_empty());
}

#[test]
fn a_client_that_ended_its_input_still_gets_a_reply_it_is_owed() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    deliver(&mut clients, id, b"upgrade\n", t);
    clients.hold(id);
    assert!(clients.received(id, 0, t).is_empty());
    assert!(clients.next_ops(id).1.is_none(), "kept while its reply is owed");
    clients.release(id, "error: upgrade failed", t);
    assert!(clients.next_ops(id).0.send.is_some(), "the reply goes out");
    clients.sent(id, b"error: upgrade failed\n".len() as i32, t);
    assert!(clients.next_ops(id).1.is_some(), "then the connection closes");
}

#[test]
fn a_stale_id_names_nobody() {
    let mut clients = Clients::new();
    let t = Instant::now();
    let id = adopt(&mut clients, t);
    clients.close(id);
    clients.received(id, 0, t);
    assert!(clients.next_ops(id).1.is_some());
    let next = adopt(&mut clients, t);
    assert_eq!(next.index, id.index, "the entry is reused");
    assert!(clients.received(id, 5, t).is_empty());
    assert_eq!(clients.close(id), Cancel::default());
    assert_eq!(clients.active(), 1);
}
