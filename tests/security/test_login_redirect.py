"""The pages' login must not bounce a freshly logged-in user to another site."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example/", "https:evil.example"]
)
def test_next_pointing_off_site_is_ignored(client: Client, bob: Any, target: str) -> None:
    response = client.post("/login/", {"username": "bob", "password": "pw-bob-1", "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"
