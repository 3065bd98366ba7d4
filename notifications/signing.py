"""Webhook secrets: encrypted at rest, and the HMAC-SHA256 signature of each delivery.

A receiver checks ``X-RenderHub-Signature: t=<unix time>,v1=<hex>``: the hex is
HMAC-SHA256 with the webhook's secret over ``f"{t}.".encode() + raw_body``. It should
also refuse a ``t`` far from its own clock (replays), as :func:`verify` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SIGNATURE_HEADER = "X-RenderHub-Signature"
EVENT_HEADER = "X-RenderHub-Event"
DELIVERY_HEADER = "X-RenderHub-Delivery"
DEFAULT_TOLERANCE = 300


class SecretUnreadable(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _fernet() -> MultiFernet:
    passphrases = settings.WEBHOOK_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    # Any passphrase becomes a Fernet key; a distinct context keeps it apart from other uses.
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    hashlib.sha256(b"renderhub.webhook:" + p.encode()).digest()
                )
            )
            for p in passphrases
        ]
    )


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The webhook secret cannot be decrypted (WEBHOOK_ENCRYPTION_KEYS or "
            "DJANGO_SECRET_KEY changed); rotate the webhook's secret."
        ) from None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={signature(secret, ts, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Receiver side: whether ``header`` signs ``body`` with ``secret``, recently enough."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        ts = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = signature(secret, ts, body)
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))
