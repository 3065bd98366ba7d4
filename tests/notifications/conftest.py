"""Webhook and e-mail tests share the api tests' receiver, webhook and job fixtures."""

from __future__ import annotations

from tests.notifications.fixtures import (  # noqa: F401 (fixtures)
    _http_webhooks_to_localhost,
    job,
    queued,
    receiver,
    webhook,
)
