# Pipelined requests with Content-Length and chunked bodies (binary, random
# sizes), sent whole or cut at random points; each echo must match byte for byte.
import socket, sys, random, re, time
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 26415
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
def parse_echo(b):
    out = {}
    i = 0
    lines = {}
    def field(prefix):
        nonlocal i
        assert b.startswith(prefix, i), (prefix, b[i:i+40])
        i += len(prefix)
        j = b.index(b"|", i); n = int(b[i:j]); v = b[j+1:j+1+n]; i = j + 1 + n
        assert b[i:i+1] in (b"\n", b"|"), b[i:i+10]
        i += 1
        return v
    out["method"] = field(b"method ")
    out["target"] = field(b"target ")
    out["path"] = field(b"path ")
    if b.startswith(b"query none\n", i):
        out["query"] = None; i += len(b"query none\n")
    else:
        out["query"] = field(b"query ")
    j = b.index(b"\n", i); out["version"] = b[i:j]; i = j + 1
    hs = []
    while b.startswith(b"header ", i):
        name = field(b"header ")
        j = b.index(b"|", i); n = int(b[i:j]); v = b[j+1:j+1+n]; i = j + 1 + n + 1
        hs.append((name, v))
    out["headers"] = hs
    out["body"] = field(b"body ")
    assert i == len(b), (i, len(b))
    return out
def read_responses(s, n):
    data = b""; res = []
    while len(res) < n:
        while True:
            k = data.find(b"\r\n\r\n")
            if k < 0: break
            head = data[:k]; m = re.search(rb"(?i)content-length: (\d+)", head)
            ln = int(m.group(1)) if m else 0
            if len(data) < k + 4 + ln: break
            res.append((head, data[k+4:k+4+ln])); data = data[k+4+ln:]
        if len(res) >= n: break
        b = s.recv(1 << 20)
        if not b: break
        data += b
    return res, data
def chunk(body):
    out = b""; i = 0
    while i < len(body):
        n = rng.randint(1, max(1, len(body) - i))
        ext = rng.choice([b"", b";a=b", b";x"])
        out += b"%x" % n + ext + b"\r\n" + body[i:i+n] + b"\r\n"; i += n
    trailer = rng.choice([b"", b"X-Trailer: t\r\n"])
    return out + b"0\r\n" + trailer + b"\r\n"
bad = 0; total = 0
for r in range(ROUNDS):
    reqs = []; exp = []
    for k in range(rng.randint(1, int(__import__("os").environ.get("K", "6")))):
        body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 10, 100, 3000, 20000])))
        method = rng.choice(["POST", "PUT", "GET"])
        q = rng.choice(["", "?a=1&b=%20x", "?", "?x"])
        target = f"/e/{r}/{k}{q}"
        hdrs = [(b"Host", b"a"), (b"X-Bin", bytes([rng.randrange(0x21, 0x7f) for _ in range(5)])), (b"x-lower", b"v  w")]
        kind = rng.choice(["len", "chunked"]) if body or rng.random() < 0.5 else "none"
        if kind == "len": hdrs.append((b"Content-Length", str(len(body)).encode())); wire = body
        elif kind == "chunked": hdrs.append((b"Transfer-Encoding", b"chunked")); wire = chunk(body)
        else: wire = b""
        req = f"{method} {target} HTTP/1.1\r\n".encode() + b"".join(n + b": " + v + b"\r\n" for n, v in hdrs) + b"\r\n" + wire
        reqs.append(req); exp.append((method, target, hdrs, body if kind != "none" else b""))
    data = b"".join(reqs)
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(5)
    if rng.random() < 0.5:
        s.sendall(data)
    else:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        prev = 0
        for c in cuts + [len(data)]:
            s.sendall(data[prev:c]); prev = c; time.sleep(0.002)
    res, rest = read_responses(s, len(reqs))
    s.close()
    for (method, target, hdrs, body), got in zip(exp, res + [None] * (len(exp) - len(res))):
        total += 1
        if got is None or not got[0].startswith(b"HTTP/1.1 200"):
            bad += 1; print("round", r, "missing/bad", got[0][:60] if got else None); continue
        e = parse_echo(got[1])
        path = target.split("?")[0]; query = target.split("?", 1)[1] if "?" in target else None
        want = {"method": method.encode(), "target": target.encode(), "path": path.encode(),
                "query": query.encode() if query is not None else None, "headers": hdrs, "body": body}
        for key in want:
            if e[key] != want[key]:
                bad += 1; print("round", r, key, "got", repr(e[key])[:120], "want", repr(want[key])[:120]); break
print("checked", total, "bad", bad)
