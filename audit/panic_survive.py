# Open N keep-alive connections, learn each one's worker, make one panic,
# check that every other connection (same worker included) still answers,
# and that handler_panics counts exactly the panics.
import socket, sys, json, subprocess, time, re
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 26415
CTL = sys.argv[2] if len(sys.argv) > 2 else "/tmp/lib-audit.sock"
PANICS = int(sys.argv[3]) if len(sys.argv) > 3 else 1
def req(s, path, method="GET"):
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b: return None, data
        data += b
    head, rest = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"Content-Length: (\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        b = s.recv(65536)
        if not b: break
        rest += b
    return head, rest
def status():
    out = subprocess.run(["./ringmaster", "ctl", CTL, "status"], capture_output=True, text=True).stdout
    return json.loads(out)
before = {w["id"]: w["handler_panics"] for w in status()["workers"]}
conns = []
for i in range(6):
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(3)
    h, b = req(s, "/whoami")
    conns.append((s, b.decode().split()[1]))
print("workers of conns:", [w for _, w in conns])
victim_worker = conns[0][1]
for k in range(PANICS):
    v = socket.create_connection(("127.0.0.1", PORT)); v.settimeout(3)
    # find a connection landing on victim_worker
    h, b = req(v, "/whoami")
    w = b.decode().split()[1]
    h, b = req(v, "/panic")
    print("panic conn on worker", w, "->", h.split(b"\r\n")[0], b, "closed after?", v.recv(10) == b"")
ok = 0
for s, w in conns:
    h, b = req(s, "/whoami")
    ok += h is not None and h.startswith(b"HTTP/1.1 200")
    print("conn on worker", w, "after:", h.split(b"\r\n")[0] if h else None, b.decode().strip() if b else b)
time.sleep(0.3)
after = {w["id"]: w["handler_panics"] for w in status()["workers"]}
print("handler_panics before", before, "after", after, "delta", sum(after.values()) - sum(before.values()), "expected", PANICS)
print("survivors", ok, "of", len(conns))
