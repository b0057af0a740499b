# A handler blocks its worker for BLOCK s (> header/idle timeouts); meanwhile
# neighbours on the same worker send complete requests in time. Are they
# answered when the loop comes back, or closed by deadlines that passed
# while the worker was not looking?
import socket, time, sys, threading
PORT = int(sys.argv[1]); BLOCK = float(sys.argv[2])
def req(s, p):
    s.sendall(f"GET {p} HTTP/1.1\r\nHost: a\r\n\r\n".encode()); return s.recv(65536)
# one worker: every connection is on it
idle = socket.create_connection(("127.0.0.1", PORT)); idle.settimeout(BLOCK + 5)
print("idle first:", req(idle, "/whoami").split(b"\r\n")[0])
res = {}
def slow():
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(BLOCK + 5)
    res["slow"] = req(s, f"/slow?n={int(BLOCK*1000)}").split(b"\r\n")[0]
t = threading.Thread(target=slow); t.start()
time.sleep(0.2)
fresh = socket.create_connection(("127.0.0.1", PORT)); fresh.settimeout(BLOCK + 5)
fresh.sendall(b"GET /whoami HTTP/1.1\r\nHost: a\r\n\r\n")   # sent in time, on a new connection
idle.sendall(b"GET /whoami HTTP/1.1\r\nHost: a\r\n\r\n")    # sent in time, on a kept-alive one
for name, s in [("new connection, request sent at 0.2 s", fresh), ("keep-alive, request sent at 0.2 s", idle)]:
    try:
        d = s.recv(65536); print(name, "->", d.split(b"\r\n")[0] if d else "closed without an answer")
    except Exception as e:
        print(name, "->", e)
t.join(); print("slow ->", res.get("slow"))
# header deadline: a head begun at 0 and completed at 0.2 s, the worker blocked from 0.1 s
part = socket.create_connection(("127.0.0.1", PORT)); part.settimeout(BLOCK + 5)
print("warm:", req(part, "/whoami").split(b"\r\n")[0])
part2 = socket.create_connection(("127.0.0.1", PORT)); part2.settimeout(BLOCK + 5)
time.sleep(0.3)
part2.sendall(b"GET /whoami HTTP/1.1\r\n")
time.sleep(0.1)
t = threading.Thread(target=slow); t.start()
time.sleep(0.2)
part2.sendall(b"Host: a\r\n\r\n")
try:
    d = part2.recv(65536); print("head completed in time ->", d.split(b"\r\n")[0] if d else "closed without an answer")
except Exception as e:
    print("head completed in time ->", e)
t.join()
