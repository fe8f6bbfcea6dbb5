#!/usr/bin/env python3
"""A load-balancer test backend: HTTP on :8000 answering "<name> <client address>", and
on :9000 a sink that greets with its name, counts what it receives until the client
shuts its side, and answers "got <bytes>"."""
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, address = sys.argv[1], sys.argv[2]


class Http(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Sink(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(f"{name}\n".encode())
        total = 0
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            total += len(data)
        self.request.sendall(f"got {total}\n".encode())


class SinkServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


# An IPv6 address (an IPv6 service's VIP) needs sockets of that family.
family = socket.AF_INET6 if ":" in address else socket.AF_INET
ThreadingHTTPServer.address_family = family
SinkServer.address_family = family
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
http = ThreadingHTTPServer((address, 8000), Http)
sink = SinkServer((address, 9000), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
print(f"backend {name} on {address}", flush=True)
http.serve_forever()
