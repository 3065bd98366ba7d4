"""Authentication: token keys (Token or Bearer), sessions with CSRF, and refused keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api import services
from api.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token"])
def test_it_accepts_a_key_with_either_scheme(token_client, bob, project, scheme) -> None:
    response = token_client(bob, scheme=scheme).get("/api/projects/")
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["shots"]


def test_it_stores_only_a_hash_and_a_prefix_of_the_key(bob) -> None:
    token, key = services.create_token(bob, "laptop")
    assert key.startswith("rh_") and len(key) > 40
    row = ApiToken.objects.values().get(pk=token.pk)
    assert key not in str(row)
    assert row["key_hash"] == services.hash_key(key)
    assert key.startswith(row["prefix"]) and len(row["prefix"]) == 11


def test_without_credentials_it_answers_401_not_a_login_redirect(client, project) -> None:
    response = client.get("/api/jobs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize(
    "header",
    ["Token rh_not-a-real-key", "Token", "Token a b", "Bearer rh_\u00e9", "Token " + "x" * 300],
)
def test_it_refuses_bad_keys_and_headers(header) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/projects/").status_code == 401


def test_a_revoked_key_is_refused(bob, project) -> None:
    token, key = services.create_token(bob, "old")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/projects/").status_code == 200
    assert services.revoke_token(token) is True
    assert services.revoke_token(token) is False
    assert client.get("/api/projects/").status_code == 401


def test_an_expired_key_is_refused(bob, project, token_client) -> None:
    client = token_client(bob, expires_at=timezone.now() + timedelta(days=1))
    assert client.get("/api/projects/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # a day later
    assert client.get("/api/projects/").status_code == 401


def test_a_token_cannot_be_made_already_expired(bob) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="in the future"):
        services.create_token(bob, "x", expires_at=timezone.now() - timedelta(minutes=1))


def test_the_key_of_an_inactive_user_is_refused(bob, project, token_client) -> None:
    client = token_client(bob)
    bob.is_active = False
    bob.save()
    assert client.get("/api/projects/").status_code == 401


def test_it_records_when_a_key_was_last_used(bob, token_client) -> None:
    client = token_client(bob)
    token = ApiToken.objects.get(user=bob)
    assert token.last_used_at is None
    client.get("/api/projects/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    client.get("/api/projects/")  # within a minute: no second write
    token.refresh_from_db()
    assert token.last_used_at == first


def test_session_login_works_for_reading(bob, project) -> None:
    client = APIClient()
    client.force_login(bob)
    assert client.get("/api/projects/").status_code == 200


def test_session_writes_need_the_csrf_token(bob, job) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(bob)
    refused = client.post(f"/api/jobs/{job.pk}/cancel/")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    job.refresh_from_db()
    assert job.state == "queued"

    # The browsable API's forms set the CSRF cookie, as they would in a browser.
    assert client.get("/api/jobs/", HTTP_ACCEPT="text/html").status_code == 200
    csrf = client.cookies["csrftoken"].value
    accepted = client.post(f"/api/jobs/{job.pk}/cancel/", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 200
