"""GET /healthz: what a load balancer polls, without a login, and without leaking anything."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

OSS_SECRET = "healthz-oss-secret-Zq8vX1"
OSS_KEY_ID = "LTAIhealthzkeyid"


def test_it_answers_ok_without_a_login(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    for name, check in body["checks"].items():
        assert check["ok"] is True, name
        assert isinstance(check["seconds"], int | float)


def test_it_is_never_cached(client: Any) -> None:
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_it_answers_503_when_storage_is_not_configured(client: Any, settings: Any) -> None:
    settings.STORAGE_URL = "oss://bucket/"
    settings.OSS_ENDPOINT = ""
    settings.OSS_ACCESS_KEY_ID = ""
    settings.OSS_ACCESS_KEY_SECRET = ""
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_it_answers_503_when_the_storage_root_is_gone(client: Any, settings: Any) -> None:
    # A file:// STORAGE_URL outside LOCAL_STORAGE_ROOT cannot be opened.
    settings.STORAGE_URL = "file:///definitely/not/the/storage/root/"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False


def test_a_failure_never_shows_secrets_or_exception_text(client: Any, settings: Any) -> None:
    # Credentials are set but the endpoint refuses connections: the probe raises with text.
    settings.STORAGE_URL = "oss://bucket/"
    settings.OSS_ENDPOINT = "http://127.0.0.1:9"
    settings.OSS_ACCESS_KEY_ID = OSS_KEY_ID
    settings.OSS_ACCESS_KEY_SECRET = OSS_SECRET
    settings.STORAGE_RETRIES = 0
    settings.STORAGE_TIMEOUT = 2
    response = client.get("/healthz")
    assert response.status_code == 503
    text = response.content.decode()
    assert OSS_SECRET not in text
    assert OSS_KEY_ID not in text
    assert settings.SECRET_KEY not in text
    for leak in ("127.0.0.1", "Error", "Traceback", "oss://", "network"):
        assert leak not in text
    body = json.loads(text)
    assert set(body) == {"status", "checks"}
    assert all(set(check) == {"ok", "seconds"} for check in body["checks"].values())
