#!/usr/bin/env python3
"""Stress client that accounts for every connection.

Usage: client.py PORT SECONDS [KIND=N ...] [--timeout S]

N clients of each KIND loop until SECONDS are over, each on a new connection
every time:
  churn      one request with `Connection: close`
  ka         20 keep-alive requests, back to back
  pipe       8 requests pipelined in one write
  halfclose  one request, then shutdown(SHUT_WR)
  slowpost   a 600-byte body dripped over 1.5 s
  100c       `Expect: 100-continue`, the body after the `100`
  noread     64 requests pipelined, nothing read for 1 s, then all read
  bignoread  3,000 requests pipelined (more than the socket buffers hold),
             nothing read for 1.5 s, then read in slices
  rst        4 requests pipelined, a few bytes read, then an RST (SO_LINGER 0):
             not accounted, it only disturbs the server

Every connection ends in exactly one outcome: `ok` (every request answered
200), `ok-closed` (answers up to one that said `Connection: close`: the rest
may be sent again, RFC 9112 9.6), `503` / `408` (also when the server's
close then reset our later writes: `503-then-reset-...`), or a failure:
an end of stream or reset before or within an answer (`@reqK` says which of
the connection's requests), a refused connect, or a `timeout` (no end within
--timeout, 12 s by default). The first line printed is JSON with the counts;
then one `FAIL <seconds since start> <wall clock> <kind> <outcome>` line per
failure, for drive.py to set against the events it caused.
"""
import asyncio, socket, struct, sys, time, json, random, collections

PORT = int(sys.argv[1]); SECS = float(sys.argv[2])
kinds = {}; TIMEOUT = 12.0
args = sys.argv[3:]
i = 0
while i < len(args):
    a = args[i]
    if a == '--timeout': TIMEOUT = float(args[i + 1]); i += 2; continue
    k, n = a.split('='); kinds[k] = int(n); i += 1

T0 = time.monotonic()
out = collections.Counter()
fails = []
REQ = b'GET /x HTTP/1.1\r\nHost: a\r\n\r\n'
REQC = b'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'


class Fail(Exception):
    pass


async def read_response(r):
    """Returns (status, close) or raises Fail(kind)."""
    try:
        head = await r.readuntil(b'\r\n\r\n')
    except asyncio.IncompleteReadError as e:
        raise Fail('eof-before-response' if not e.partial else 'eof-mid-head')
    except ConnectionResetError:
        raise Fail('reset-before-response')
    lines = head.split(b'\r\n')
    try:
        status = int(lines[0].split()[1])
    except Exception:
        raise Fail('bad-status-line:%r' % lines[0][:40])
    if status == 100:
        return await read_response(r)
    cl = 0; close = False
    for l in lines[1:]:
        if b':' in l:
            k, v = l.split(b':', 1)
            k = k.strip().lower(); v = v.strip().lower()
            if k == b'content-length': cl = int(v)
            if k == b'connection' and v == b'close': close = True
    try:
        await r.readexactly(cl)
    except asyncio.IncompleteReadError:
        raise Fail('eof-mid-body')
    except ConnectionResetError:
        raise Fail('reset-mid-body')
    return status, close


def note(kind, what, extra=''):
    out[kind + ':' + what] += 1
    if what not in ('ok', 'ok-closed', '503', '408', 'rst-sent') and not what.startswith(('503-then', '408-then')):
        fails.append((round(time.monotonic() - T0, 3), time.time(), kind, what, extra))


async def one(kind):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection('127.0.0.1', PORT), 5)
    except Exception as e:
        note(kind, 'connect-' + type(e).__name__); return
    try:
        await asyncio.wait_for(body(kind, r, w), TIMEOUT)
    except asyncio.TimeoutError:
        note(kind, 'timeout')
    except Fail as f:
        note(kind, str(f))
    except OSError as e:
        # A write failed: an error answer may be waiting in the buffer.
        what = 'reset-' + type(e).__name__ if isinstance(e, (ConnectionResetError, BrokenPipeError)) else 'oserror-%d' % e.errno
        try:
            buf = bytes(r._buffer)
            r2 = asyncio.StreamReader(); r2.feed_data(buf); r2.feed_eof()
            st, _ = await read_response(r2)
            what = ('%d' % st if st in (503, 408) else 'status-%d' % st) + '-then-' + what
        except Exception:
            pass
        note(kind, what)
    finally:
        try:
            w.transport.abort()
        except Exception:
            pass


def status_outcome(st, kind):
    if st == 200: return 'ok'
    if st in (503, 408): return str(st)
    return 'status-%d' % st


async def read_answers(r, w, kind, count, each=None, pause_every=0):
    """Reads `count` answers (writing `each` before each one, if given) and
    notes the connection's outcome: the first status that is not 200, a
    close the server announced, or 'ok'."""
    for n in range(count):
        if each is not None:
            w.write(each); await w.drain()
        try:
            st, close = await read_response(r)
        except Fail as f:
            raise Fail('%s@req%d' % (f, n))
        if st != 200: note(kind, status_outcome(st, kind)); return
        if close: note(kind, 'ok-closed'); return
        if pause_every and n % pause_every == 0: await asyncio.sleep(0.05)
    note(kind, 'ok')


async def body(kind, r, w):
    if kind == 'churn':
        w.write(REQC); await w.drain()
        st, _ = await read_response(r)
        note(kind, status_outcome(st, kind))
    elif kind == 'halfclose':
        w.write(REQ); await w.drain()
        w.write_eof()
        st, close = await read_response(r)
        note(kind, status_outcome(st, kind))
    elif kind == 'ka':
        await read_answers(r, w, kind, 20, each=REQ)
    elif kind == 'pipe':
        w.write(REQ * 8); await w.drain()
        await read_answers(r, w, kind, 8)
    elif kind == 'noread':
        w.write(REQ * 64); await w.drain()
        await asyncio.sleep(1.0)
        await read_answers(r, w, kind, 64)
    elif kind == 'bignoread':
        N = 3000
        w.write(REQ * N)
        await asyncio.sleep(1.5)
        await w.drain()
        await read_answers(r, w, kind, N, pause_every=200)
    elif kind == 'slowpost':
        n = 600
        w.write(b'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n' % n); await w.drain()
        for _ in range(6):
            await asyncio.sleep(0.25)
            w.write(b'x' * (n // 6)); await w.drain()
        st, close = await read_response(r)
        note(kind, status_outcome(st, kind))
    elif kind == '100c':
        w.write(b'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'); await w.drain()
        head = await r.readuntil(b'\r\n\r\n')
        if b' 100 ' not in head.split(b'\r\n')[0]:
            st = int(head.split()[1]); note(kind, status_outcome(st, kind)); return
        w.write(b'hello'); await w.drain()
        st, close = await read_response(r)
        note(kind, status_outcome(st, kind))
    elif kind == 'rst':
        w.write(REQ * 4); await w.drain()
        await r.read(10)
        sock = w.get_extra_info('socket')
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        note(kind, 'rst-sent')


async def loop(kind):
    end = T0 + SECS
    while time.monotonic() < end:
        await one(kind)


async def main():
    tasks = [asyncio.create_task(loop(k)) for k, n in kinds.items() for _ in range(n)]
    await asyncio.gather(*tasks)
    total = sum(out.values())
    print(json.dumps({'total': total, 'fails': len(fails), 'outcomes': dict(sorted(out.items()))}))
    for f in fails:
        print('FAIL', *f)


asyncio.run(main())
