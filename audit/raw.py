import socket, sys, time
def raw(data, port=26415, timeout=2.0, shut=False, pieces=None, delay=0.05):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    if pieces:
        for p in pieces:
            s.sendall(p); time.sleep(delay)
    else:
        s.sendall(data)
    if shut: s.shutdown(socket.SHUT_WR)
    out = b""
    closed = False
    try:
        while True:
            b = s.recv(65536)
            if not b: closed = True; break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        out += b"<RESET>"; closed=True
    s.close()
    return out, closed
if __name__ == "__main__":
    data = eval("b'''" + sys.argv[1] + "'''") if len(sys.argv) > 1 else sys.stdin.buffer.read()
    out, closed = raw(data)
    sys.stdout.write(repr(out)[2:-1].replace("\\r\\n", "\\r\\n\n") + ("\n<CLOSED>" if closed else "\n<OPEN>") + "\n")
