"""Webhook fixtures: a receiver on 127.0.0.1, a webhook to it, a job, and the broker recorded.

The receiver checks every delivery's signature the way a customer's server would (its
own HMAC code, not RenderHub's) and answers with the statuses a test scripts. The api and
notifications test packages import these into their conftest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from notifications import services


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Record what would go to the broker instead of sending it (no worker in these tests)."""
    sent: dict[str, list[Any]] = {"deliveries": [], "emails": [], "run_emails": []}
    monkeypatch.setattr(services, "_enqueue_delivery", sent["deliveries"].append)
    monkeypatch.setattr(
        services, "_enqueue_email", lambda job_id, state: sent["emails"].append((job_id, state))
    )
    monkeypatch.setattr(
        services, "_enqueue_run_email", lambda pk, state: sent["run_emails"].append((pk, state))
    )
    return sent


@pytest.fixture(autouse=True)
def _http_webhooks_to_localhost(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_HTTP_LOCALHOST = True
    settings.WEBHOOK_RETRY_BASE = 0.5
    settings.WEBHOOK_TIMEOUT = 3.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The test's webhook endpoint. ``script`` holds the statuses to answer, in order
    (then 200); an item may be ``(307, "/elsewhere")`` or ``("sleep", seconds)``."""

    url: str
    secret: str = ""
    script: list[Any] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, header: str, body: bytes) -> bool:
        # What a receiver does: parse t= and v1=, recompute HMAC-SHA256 over "t.body".
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            ts = int(parts["t"])
        except (KeyError, ValueError):
            return False
        expected = hmac.new(
            self.secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return abs(time.time() - ts) < 300 and hmac.compare_digest(expected, parts.get("v1", ""))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rcv = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with rcv.lock:
                rcv.received.append(
                    Received(
                        self.path,
                        dict(self.headers.items()),
                        body,
                        rcv.verify(self.headers.get("X-RenderHub-Signature", ""), body),
                        time.monotonic(),
                    )
                )
                step = rcv.script.pop(0) if rcv.script else 200
            if isinstance(step, tuple) and step[0] == "sleep":
                time.sleep(step[1])
                step = 200
            if isinstance(step, tuple):
                self.send_response(step[0])
                self.send_header("Location", step[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            reply = b'{"ok": true}' if step < 300 else b"receiver says no"
            self.send_response(step)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks/renderhub")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook(project: Any, receiver: Receiver) -> Any:
    """A webhook of project ``shots`` to the receiver, for every event; the receiver
    knows the secret (as its owner would, having copied it at creation)."""
    from notifications.choices import WebhookEvent

    hook, secret = services.create_webhook(project, receiver.url, list(WebhookEvent.values))
    receiver.secret = secret
    return hook


@pytest.fixture
def job(project: Any, blender_software: Any, cluster: Any, scene_url: str, bob: Any) -> Any:
    """A job bob submitted (no worker: it stays queued)."""
    from jobs import services as job_services

    [job] = job_services.submit_render(
        job_services.RenderRequest(
            project=project,
            software=blender_software,
            cluster=cluster,
            scenes=[scene_url],
            frames="1-6",
            nodes=2,
        ),
        user=bob,
    )
    return job
