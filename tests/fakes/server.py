"""What the wire-level fakes of OSS and BatchCompute share.

:class:`FakeServer` runs a loopback HTTP server in a thread (127.0.0.1, an ephemeral port),
keeps the fault queue that ``fail_next``/``delay_next`` fill and the list of the fake's own
exceptions (``internal_errors``: a fixture asserts it is empty). :class:`FakeHandler` reads
each request (chunked or sized body, always drained so keep-alive holds), hands it to the
fake's ``handle`` and sends what comes back: a :class:`FakeError` as the service's error
reply, any other exception as a 500 after recording it. Each fake says how its replies
and errors look on the wire; nothing here is OSS- or BatchCompute-specific.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class FakeError(Exception):
    """An error reply of the service: HTTP status, error code, message and extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Fault:
    """``remaining`` matching requests fail with ``status`` or wait ``delay`` seconds.

    A request matches when it has ``method`` and ``match`` is one of its keys (what a key
    is depends on the fake: BatchCompute's route, an OSS query parameter); None: any. The
    first ``after`` matching requests pass through.
    """

    remaining: int
    method: str | None
    match: str | None
    after: int
    status: int = 0
    code: str = ""
    message: str = ""
    delay: float = 0.0


class FakeServer:
    """A fake service over real HTTP. Use :meth:`start`/:meth:`stop` or a ``with`` block."""

    label = "fake"  # in error messages: "the fake OSS server is not running"
    handler: type[FakeHandler]

    def __init__(self) -> None:
        #: Exceptions raised inside the fake itself; a test fixture should assert it is empty.
        self.internal_errors: list[BaseException] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), self.handler)
        self._server.fake = self
        for target in (self._serve, *self.background()):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def background(self) -> tuple[Callable[[], None], ...]:
        """Loops to run in threads of their own while the server runs (until stopping)."""
        return ()

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in delay_next, ends background loops
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.label} server is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- requests ----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        """One request in, the reply out (the handler sends it); raises FakeError."""
        raise NotImplementedError

    def internal_error(self, exc: Exception) -> FakeError:
        """The error reply for an exception inside the fake."""
        return FakeError(500, "InternalError", repr(exc))

    # --- faults ------------------------------------------------------------------------

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, keys: Iterable[str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method) or fault.match not in (None, *keys):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _inject_fault(
        self, method: str, keys: Iterable[str], error: Callable[[Fault], FakeError]
    ) -> None:
        """Apply the first fault matching this request: wait, then raise ``error(fault)``."""
        fault = self._take_fault(method, keys)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status:
            raise error(fault)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer


class FakeHandler(BaseHTTPRequestHandler):
    """Reads a request, asks the fake, answers: :meth:`send_reply` or :meth:`send_failure`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as pooled client sessions expect
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def new_request_id(self) -> str:
        raise NotImplementedError

    def send_reply(self, reply: Any, request_id: str) -> None:
        raise NotImplementedError

    def send_failure(self, exc: FakeError, request_id: str) -> None:
        raise NotImplementedError

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            # The client hung up mid-body: store nothing.
            raise ConnectionResetError("incomplete request body")
        return data

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionResetError("incomplete chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self._read_exactly(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self._read_exactly(length) if length else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        request_id = self.new_request_id()
        try:
            body = self._read_body()  # always drain it, or keep-alive breaks
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = fake.handle(self.command, self.path, headers, body)
            except FakeError as exc:
                self.send_failure(exc, request_id)
                return
            except Exception as exc:
                fake.internal_errors.append(exc)
                self.send_failure(fake.internal_error(exc), request_id)
                return
            self.send_reply(reply, request_id)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client gave up (e.g. after delay_next)
