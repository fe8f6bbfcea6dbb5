#!/usr/bin/env python3
"""Load-balancer test client.
  spread VIP PORT N         N HTTP connections; prints {"backends": {name: n}, "sources": {addr: n}, "errors": n}
  stream VIP PORT SECONDS AVOID[,AVOID]  a connection to a backend not in AVOID, fed for SECONDS;
                            prints {"backend", "sent", "got", "ok", "error"}; READY on stderr once streaming
  hold VIP PORT N SECONDS   N long-lived connections to a sink, each fed 512 bytes every 50 ms for
                            SECONDS, then closed and checked (the backend counted every byte: the
                            connection never left it); prints {"connections", "ok", "backends",
                            "failed", "first_error"}; READY on stderr once all are open
"""
import json
import socket
import sys
import time


def get(vip, port):
    with socket.create_connection((vip, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1].decode().split()
    return body[0], body[1]


def spread(vip, port, n):
    backends, sources, errors, first_error = {}, {}, 0, ""
    for _ in range(n):
        try:
            name, source = get(vip, port)
            backends[name] = backends.get(name, 0) + 1
            sources[source] = sources.get(source, 0) + 1
        except Exception as e:  # counted: the caller asserts none
            errors += 1
            first_error = first_error or repr(e)
    print(json.dumps({"backends": backends, "sources": sources, "errors": errors, "first_error": first_error}))


def stream(vip, port, seconds, avoid):
    for _ in range(50):
        s = socket.create_connection((vip, port), timeout=5)
        name = s.makefile("rb").readline().decode().strip()
        if name not in avoid:
            break
        s.close()
    else:
        print(json.dumps({"ok": False, "error": "every connection went to " + ",".join(avoid)}))
        return
    sent, chunk, end = 0, b"x" * 8192, time.time() + seconds
    print("READY " + name, file=sys.stderr, flush=True)
    result = {"backend": name, "sent": 0, "got": -1, "ok": False, "error": ""}
    try:
        while time.time() < end:
            s.sendall(chunk)
            sent += len(chunk)
            time.sleep(0.002)  # about 4 MB/s: long-lived, not a flood
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        reply = b""
        while not reply.endswith(b"\n"):
            data = s.recv(100)
            if not data:
                break
            reply += data
        got = int(reply.split()[1]) if reply.startswith(b"got ") else -1
        result.update(sent=sent, got=got, ok=got == sent)
    except Exception as e:
        result.update(sent=sent, error=repr(e))
    print(json.dumps(result))


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        data = s.recv(100)
        if not data:
            raise ConnectionError("closed before a whole line: " + repr(line))
        line += data
    return line.decode().strip()


def hold(vip, port, n, seconds):
    conns = []
    for _ in range(n):
        s = socket.create_connection((vip, port), timeout=15)
        conns.append({"sock": s, "backend": read_line(s), "sent": 0, "error": ""})
    print("READY", file=sys.stderr, flush=True)
    chunk, end = b"y" * 512, time.time() + seconds
    while time.time() < end:
        for c in conns:
            if c["error"]:
                continue
            try:
                c["sock"].sendall(chunk)
                c["sent"] += len(chunk)
            except Exception as e:  # counted below
                c["error"] = "send: " + repr(e)
        time.sleep(0.05)
    for c in conns:
        if not c["error"]:
            try:
                c["sock"].shutdown(socket.SHUT_WR)
            except Exception as e:
                c["error"] = "shutdown: " + repr(e)
    backends, ok, first_error = {}, 0, ""
    for c in conns:
        backends[c["backend"]] = backends.get(c["backend"], 0) + 1
        if not c["error"]:
            try:
                reply = read_line(c["sock"])
                got = int(reply.split()[1]) if reply.startswith("got ") else -1
                if got == c["sent"]:
                    ok += 1
                else:
                    c["error"] = f"the backend counted {got} of {c['sent']} bytes"
            except Exception as e:
                c["error"] = "reply: " + repr(e)
        first_error = first_error or c["error"]
        c["sock"].close()
    print(json.dumps({"connections": n, "ok": ok, "failed": n - ok, "backends": backends, "first_error": first_error}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "spread":
        spread(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "stream":
        stream(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5].split(","))
    elif mode == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
