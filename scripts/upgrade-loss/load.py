#!/usr/bin/env python3
"""Bounded HTTP load against 127.0.0.1:PORT that classifies every failure.

churn clients: fresh connection, one `Connection: close` request, read the
whole answer, then wait for the server's close.
keep-alive clients: requests on one connection until the server says
`Connection: close` (then reconnect) or the run ends.

Failure kinds (each a loss):
  connect_refused, connect_reset, connect_timeout, connect_other
  write_error          the request could not be written (reset/EPIPE)
  no_response_eof      clean EOF before any byte of the answer
  no_response_reset    reset before any byte of the answer
  no_response_timeout  nothing within TIMEOUT
  reset_mid_response   reset/EOF after part of the answer
  non_200
  ka_eof_reused        keep-alive only: EOF before any byte on a reused
                       connection whose last answer did not say close
                       (the server closed an idle keep-alive connection
                       as the request went out) -- counted apart, still a loss
Prints one JSON line with counts at the end.
"""
import json, os, random, select, socket, sys, threading, time, errno
KA_PAUSE_MAX = float(os.environ.get("KA_PAUSE_MAX", "0.001"))

TIMEOUT = 10.0
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
REQ_KA = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Fail(Exception):
    def __init__(self, kind, detail=""):
        self.kind, self.detail = kind, detail


def connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        s.close(); raise Fail("connect_refused")
    except ConnectionResetError:
        s.close(); raise Fail("connect_reset")
    except socket.timeout:
        s.close(); raise Fail("connect_timeout")
    except OSError as e:
        s.close(); raise Fail("connect_other", str(e))
    return s


def read_answer(s, reused):
    """Reads one answer; returns (status, close_flag)."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                if not buf:
                    raise Fail("ka_eof_reused" if reused else "no_response_eof")
                raise Fail("reset_mid_response", "eof in head")
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        clen, close = 0, False
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            k = k.strip().lower(); v = v.strip().lower()
            if k == b"content-length":
                clen = int(v)
            elif k == b"connection" and b"close" in v:
                close = True
        while len(body) < clen:
            d = s.recv(4096)
            if not d:
                raise Fail("reset_mid_response", "eof in body")
            body += d
        return status, close
    except ConnectionResetError:
        raise Fail("reset_mid_response" if buf else ("ka_reset_reused" if reused else "no_response_reset"))
    except socket.timeout:
        raise Fail("reset_mid_response" if buf else "no_response_timeout", "timeout")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.fails = {}
        self.first = []
        self.stale = 0

    def add_stale(self):
        with self.lock:
            self.stale += 1

    def add_ok(self):
        with self.lock:
            self.ok += 1

    def add_fail(self, f, who):
        with self.lock:
            self.fails[f.kind] = self.fails.get(f.kind, 0) + 1
            if len(self.first) < 20:
                self.first.append("%.3f %s %s %s" % (time.time(), who, f.kind, f.detail))


def churn(port, stop, st):
    while not stop.is_set():
        try:
            s = connect(port)
        except Fail as f:
            st.add_fail(f, "churn"); time.sleep(0.01); continue
        try:
            try:
                s.sendall(REQ_CLOSE)
            except OSError as e:
                raise Fail("write_error", str(e))
            status, _ = read_answer(s, False)
            if status != 200:
                raise Fail("non_200", str(status))
            st.add_ok()
            # the server closes after a close request: wait for it, a reset here is fine
            try:
                s.recv(1)
            except OSError:
                pass
        except Fail as f:
            st.add_fail(f, "churn")
        finally:
            s.close()


def keepalive(port, stop, st):
    s = None
    while not stop.is_set():
        if s is None:
            try:
                s = connect(port); reused = False
            except Fail as f:
                st.add_fail(f, "ka"); time.sleep(0.01); continue
        try:
            try:
                t_send = time.time()
                s.sendall(REQ_KA)
            except OSError as e:
                raise Fail("write_error", str(e))
            try:
                status, close = read_answer(s, reused)
            except Fail as f:
                if reused:
                    f.detail += " idle %.0f ms before the send" % ((t_send - t_last) * 1000)
                raise
            if status != 200:
                raise Fail("non_200", str(status))
            st.add_ok()
            reused = True
            t_last = time.time()
            if close:
                s.close(); s = None
            else:
                time.sleep(random.uniform(0, KA_PAUSE_MAX))
                # a careful pool checks a reused connection before it sends:
                # a close the server sent while it was idle is seen here, not a loss
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    st.add_stale()
                    s.close(); s = None
        except Fail as f:
            st.add_fail(f, "ka")
            s.close(); s = None
    if s is not None:
        s.close()


def main():
    port, secs = int(sys.argv[1]), float(sys.argv[2])
    nchurn = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    nka = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    stop, st = threading.Event(), Stats()
    ts = [threading.Thread(target=churn, args=(port, stop, st)) for _ in range(nchurn)]
    ts += [threading.Thread(target=keepalive, args=(port, stop, st)) for _ in range(nka)]
    for t in ts:
        t.start()
    time.sleep(secs)
    stop.set()
    for t in ts:
        t.join(TIMEOUT + 5)
    print(json.dumps({"answered": st.ok, "losses": st.fails, "first": st.first, "ka_idle_closed_seen_before_send": st.stale}), flush=True)


if __name__ == "__main__":
    main()
