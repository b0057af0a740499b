# A keep-alive connection whose own answer took the handler SLOW s: is it
# given its full idle timeout after that answer, or closed at once (its
# idle deadline counted from before the handler ran)?
import socket, time, sys
PORT = int(sys.argv[1]); SLOW = int(sys.argv[2]); AFTER = float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(SLOW / 1000 + 5)
s.sendall(f"GET /slow?n={SLOW} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
d = s.recv(65536); t = time.time(); print("slow answer:", d.split(b"\r\n")[0])
time.sleep(AFTER)
try:
    s.sendall(b"GET /whoami HTTP/1.1\r\nHost: a\r\n\r\n")
    d = s.recv(65536)
    print(f"next request {AFTER} s after the answer ->", d.split(b"\r\n")[0] if d else "closed without an answer", f"({time.time()-t:.2f} s)")
except Exception as e:
    print(f"next request {AFTER} s after the answer ->", e)
