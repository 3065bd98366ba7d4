"""A real HTTP server on 127.0.0.1 serving WDL files for URL imports, and misbehaving on
request: ``/big`` (larger than asked), ``/slow`` (a byte at a time), ``/redirect?to=URL``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class WdlServer:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.requests: list[str] = []
        self.big_bytes = 4 * 1024 * 1024
        self.slow_seconds = 30.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server's name for it
                server.requests.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path == "/big":
                    self.send_response(200)  # no Content-Length: only reading tells
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"#" * 65536
                    for _ in range(server.big_bytes // len(chunk)):
                        try:
                            self.wfile.write(chunk)
                        except OSError:
                            return
                elif parts.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    deadline = time.monotonic() + server.slow_seconds
                    while time.monotonic() < deadline:
                        try:
                            self.wfile.write(b"#")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.2)
                elif parts.path in server.files:
                    body = server.files[parts.path].encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"


@contextmanager
def wdl_server() -> Iterator[WdlServer]:
    server = WdlServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
