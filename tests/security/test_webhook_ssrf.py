"""Finding 7 of issue 11: the webhook SSRF guard checked one DNS answer and connected on
another, and its error texts told refused, TLS and timeout apart.

The attacker owns a webhook whose name answers a public address the first time and
127.0.0.1 afterwards (DNS rebinding; ``socket.getaddrinfo`` stands in for the DNS server
there is not here). A real HTTP server listens on 127.0.0.1 and records every connection it
accepts: it must see none. Then, with internal receivers allowed, the owner of a webhook
aimed at closed, TLS-less and silent ports reads one and the same error for each.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from notifications import services
from notifications.choices import DeliveryState
from notifications.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

NAME = "hooks.attacker.example"
PUBLIC = "93.184.215.14"  # any global address: the first answer, the one that is checked


class Trap(ThreadingHTTPServer):
    """A receiver on 127.0.0.1 that counts the connections it accepts."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.connections: list[Any] = []
        self.requests: list[str] = []

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections.append(client_address)
        return True


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[Trap]:
    server = Trap(handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Answering(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Silent(BaseHTTPRequestHandler):
    def handle(self) -> None:  # accepts, then never answers
        self.request.recv(65536)
        threading.Event().wait(3)


@pytest.fixture
def trap() -> Iterator[Trap]:
    yield from serve(Answering)


@pytest.fixture
def silent() -> Iterator[Trap]:
    yield from serve(Silent)


@dataclass
class Resolver:
    """NAME's answers, one per lookup (the last one repeats); ``asked`` records each."""

    answers: list[str]
    asked: list[str] = field(default_factory=list)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """Rebinding DNS: NAME answers a public address to the first lookup, then 127.0.0.1."""
    real = socket.getaddrinfo
    resolver = Resolver([PUBLIC, "127.0.0.1"])

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        answers = resolver.answers
        answer = answers[min(len(resolver.asked), len(answers) - 1)]
        resolver.asked.append(answer)
        return real(answer, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return resolver


@pytest.fixture
def deliver(project: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``deliver(url)``: a ping to a new webhook at ``url``, attempted once; the delivery."""
    settings.WEBHOOK_TIMEOUT = 1.0
    monkeypatch.setattr(services, "_enqueue_delivery", lambda delivery_id: None)

    def run(url: str) -> WebhookDelivery:
        webhook = Webhook.objects.filter(project=project).first()
        if webhook is None:
            webhook, _secret = services.create_webhook(project, url, ["job.state_changed"])
        Webhook.objects.filter(pk=webhook.pk).update(url=url)
        webhook.refresh_from_db()
        delivery = services.send_test_event(webhook)
        services.attempt_delivery(str(delivery.pk))
        delivery.refresh_from_db()
        return delivery

    return run


def test_a_name_that_rebinds_to_loopback_never_reaches_it(
    deliver: Callable[..., Any], trap: Trap, dns: Resolver
) -> None:
    url = f"https://{NAME}:{trap.server_port}/hook"
    first = deliver(url)  # checked PUBLIC, so it connects to PUBLIC, not to a new answer
    assert dns.asked == [PUBLIC]
    assert first.state == DeliveryState.RETRYING and first.error == services.UNREACHABLE
    second = deliver(url)  # now the name answers 127.0.0.1: refused before connecting
    assert dns.asked == [PUBLIC, "127.0.0.1"]
    assert second.state == DeliveryState.FAILED
    assert second.error.startswith(f"{NAME} is not a public address")
    assert "127.0.0.1" not in second.error  # what an internal name resolves to stays hidden
    assert trap.connections == [] and trap.requests == []


def test_a_name_answering_public_and_loopback_at_once_is_refused(
    deliver: Callable[..., Any], trap: Trap, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        return [*real(PUBLIC, port, *args, **kwargs), *real("127.0.0.1", port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    delivery = deliver(f"https://{NAME}:{trap.server_port}/hook")
    assert delivery.state == DeliveryState.FAILED and "not a public address" in delivery.error
    assert trap.connections == []


def test_allowed_internal_receivers_still_work(
    deliver: Callable[..., Any], trap: Trap, dns: Resolver, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    dns.answers = ["127.0.0.1"]
    delivery = deliver(f"https://{NAME}:{trap.server_port}/hook")
    # It connects (the TLS handshake then fails against this plain HTTP server).
    assert len(trap.connections) == 1
    assert delivery.error == services.UNREACHABLE


def test_refused_tls_and_timeout_read_the_same_to_the_owner(
    deliver: Callable[..., Any],
    trap: Trap,
    silent: Trap,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The port scan: with internal receivers allowed, a member aims the webhook at ports
    of the manager's network and reads the delivery errors."""
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    caplog.set_level(logging.WARNING, logger="notifications.services")
    errors = {
        "closed": deliver(f"https://127.0.0.1:{closed_port}/").error,
        "plain HTTP": deliver(f"https://127.0.0.1:{trap.server_port}/").error,
        "silent": deliver(f"https://127.0.0.1:{silent.server_port}/").error,
    }
    assert set(errors.values()) == {services.UNREACHABLE}, errors
    # The server log keeps what happened, for the administrator.
    assert "ConnectionError" in caplog.text and "SSLError" in caplog.text
    assert "Timeout" in caplog.text
