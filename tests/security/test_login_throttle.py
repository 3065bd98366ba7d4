"""Finding 9 of issue 11: the login lockout was keyed on REMOTE_ADDR only.

Behind the supported reverse proxy every request comes from the proxy's address, so five
wrong passwords for a user locked that user out for everybody, and nothing limited one
address trying many user names. Real POSTs to the admin login, as the proxy forwards them
(REMOTE_ADDR the proxy, X-Forwarded-For ending with the client's address).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PROXY = "127.0.0.1"
ALICE_PW, BOB_PW = "pw-alice-1", "pw-bob-1"


@pytest.fixture(autouse=True)
def _throttle(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "s"}
    }
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 6
    settings.TRUSTED_PROXY_COUNT = 1
    cache.clear()


def login(username: str, password: str, forwarded_for: str | None, remote: str = PROXY) -> Any:
    """One login POST from a fresh browser; the response (``.ok``: logged in)."""
    client = Client()
    headers = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    response = client.post(LOGIN, {"username": username, "password": password}, **headers)
    response.ok = "_auth_user_id" in client.session
    return response


def locked_out(response: Any) -> bool:
    return "Too many failed logins from your address" in response.content.decode()


def test_behind_the_proxy_a_lockout_is_per_client_not_for_everyone(alice: Any, bob: Any) -> None:
    for _ in range(3):
        assert not login("alice", "wrong", "203.0.113.5").ok
    refused = login("alice", ALICE_PW, "203.0.113.5")
    assert not refused.ok and locked_out(refused)  # a clear message, not "wrong password"
    # Everyone else comes through the same proxy, and is not locked out.
    assert login("bob", BOB_PW, "198.51.100.7").ok
    assert login("alice", ALICE_PW, "198.51.100.8").ok


def test_one_address_spraying_user_names_is_limited(alice: Any, bob: Any) -> None:
    for i in range(5):  # one wrong password each: under the per-user limit every time
        assert not login(f"user{i}", "Summer2026!", "203.0.113.9").ok
    # The attacker's own good login does not reset the address's count...
    assert login("alice", ALICE_PW, "203.0.113.9").ok
    assert not login("user5", "Summer2026!", "203.0.113.9").ok
    # ...so the sixth failure locks the address: even a right password is refused now.
    refused = login("bob", BOB_PW, "203.0.113.9")
    assert not refused.ok and locked_out(refused)
    assert login("bob", BOB_PW, "198.51.100.7").ok  # from elsewhere: fine


def test_a_forged_header_is_ignored_without_a_trusted_proxy(alice: Any, settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 0  # no proxy in front: X-Forwarded-For is anyone's text
    for i in range(3):
        login("alice", "wrong", f"192.0.2.{i}", remote="203.0.113.20")
    refused = login("alice", ALICE_PW, "192.0.2.99", remote="203.0.113.20")
    assert not refused.ok and locked_out(refused)


def test_entries_the_client_prepends_are_not_trusted(alice: Any) -> None:
    # The proxy appends what it saw (203.0.113.30); what the client sent stays in front.
    for i in range(3):
        login("alice", "wrong", f"10.9.8.{i}, 203.0.113.30")
    refused = login("alice", ALICE_PW, "10.9.8.99, 203.0.113.30")
    assert not refused.ok and locked_out(refused)


def test_two_trusted_proxies_take_the_second_entry_from_the_right(
    alice: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 2  # a CDN, then nginx
    for _ in range(3):
        login("alice", "wrong", "6.6.6.6, 203.0.113.40, 198.18.0.1")
    assert not login("alice", ALICE_PW, "7.7.7.7, 203.0.113.40, 198.18.0.1").ok
    assert login("alice", ALICE_PW, "6.6.6.6, 203.0.113.41, 198.18.0.1").ok
