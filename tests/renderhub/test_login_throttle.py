from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def _clean_cache(settings: Any, tmp_path: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}
    }
    settings.LOGIN_MAX_FAILURES = 3
    cache.clear()


def login(client: Any, password: str, address: str = "10.0.0.1") -> bool:
    client.post(LOGIN, {"username": "alice", "password": password}, REMOTE_ADDR=address)
    return "_auth_user_id" in client.session


def test_repeated_wrong_passwords_lock_the_user_out_from_that_address(client, alice) -> None:
    for _ in range(3):
        assert not login(client, "wrong")
    assert not login(client, "pw-alice-1")  # even the right password is refused now
    assert login(client, "pw-alice-1", address="10.0.0.2")  # another address is unaffected


def test_a_good_login_forgets_earlier_failures(client, alice) -> None:
    assert not login(client, "wrong")
    assert not login(client, "wrong")
    assert login(client, "pw-alice-1")
    client.logout()
    assert not login(client, "wrong")
    assert not login(client, "wrong")
    assert login(client, "pw-alice-1")


def test_the_lockout_ends(client, alice) -> None:
    for _ in range(3):
        login(client, "wrong")
    cache.clear()  # what LOGIN_LOCKOUT_SECONDS passing does
    assert login(client, "pw-alice-1")
