"""Lockout bypass by address rotation: a client with an IPv6 /64 (what one home or cloud
machine is given) sends every wrong password from a fresh address of it. Failures count
against the /64, so the user is locked out for that client all the same, for the pages'
login and the admin's; another network is not affected."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _throttle(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "6"}
    }
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 6
    settings.TRUSTED_PROXY_COUNT = 0
    cache.clear()


def _login(address: str, username: str, password: str, url: str = "/login/") -> Any:
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/login/", "/admin/login/?next=/admin/"])
def test_fresh_addresses_of_one_slash_64_share_one_lockout(alice: Any, url: str) -> None:
    for n in range(1, 4):
        assert _login(f"2001:db8:1:2::{n:x}", "alice", "wrong", url).status_code == 200
    # The right password from yet another address of the same /64 is refused.
    response = _login("2001:db8:1:2:ffff::9", "alice", "pw-alice-1", url)
    assert response.status_code == 200 and "Too many failed logins" in response.content.decode()
    # Another client's network still logs in.
    assert _login("2001:db8:9:9::1", "alice", "pw-alice-1", url).status_code == 302


def test_spraying_names_from_rotating_addresses_is_limited(alice: Any, bob: Any) -> None:
    for n in range(6):
        _login(f"2001:db8:1:2::{n + 100:x}", f"user{n}", "wrong")
    response = _login("2001:db8:1:2::abcd", "bob", "pw-bob-1")
    assert "Too many failed logins" in response.content.decode()


def test_an_ipv4_mapped_address_counts_as_the_ipv4_one(alice: Any) -> None:
    for _ in range(3):
        _login("::ffff:203.0.113.7", "alice", "wrong")
    assert "Too many failed logins" in _login("203.0.113.7", "alice", "pw-alice-1").content.decode()
