"""Artists log in to the pages without the staff flag; the admin stays for staff.

Real POSTs to the pages' login and the admin's, with real password checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l"}
    }
    settings.LOGIN_MAX_FAILURES = 3
    cache.clear()


@pytest.fixture
def artist(django_user_model: Any, project: Any) -> Any:
    """A project member with no staff flag and no model permissions."""
    user = django_user_model.objects.create_user("émile", "e@example.com", "pw-émile-1")
    project.members.add(user)
    return user


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_a_member_without_staff_rights_logs_in_to_the_pages(client: Client, artist: Any) -> None:
    first = client.get("/jobs/")
    assert first.status_code == 302 and first["Location"] == "/login/?next=/jobs/"
    page = client.get(first["Location"]).content.decode()
    assert 'name="username"' in page and "Log in" in page
    response = client.post(
        "/login/?next=/jobs/", {"username": "émile", "password": "pw-émile-1", "next": "/jobs/"}
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert logged_in(client)
    dashboard = client.get("/").content.decode()
    assert "Dashboard" in dashboard and "émile" in dashboard
    assert 'href="/admin/"' not in dashboard  # no link to a door that stays shut


def test_the_admin_tells_a_non_staff_member_where_to_log_in(client: Client, artist: Any) -> None:
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "émile", "password": "pw-émile-1"}
    )
    assert response.status_code == 200 and not logged_in(client)
    assert "no staff rights" in response.content.decode()


def test_a_wrong_password_is_refused_and_the_lockout_applies(client: Client, artist: Any) -> None:
    for _ in range(3):
        response = client.post("/login/", {"username": "émile", "password": "wrong"})
        assert response.status_code == 200 and not logged_in(client)
        assert "correct username and password" in response.content.decode()
    locked = client.post("/login/", {"username": "émile", "password": "pw-émile-1"})
    assert not logged_in(client)
    assert "Too many failed logins from your address" in locked.content.decode()


def test_an_inactive_account_cannot_log_in(client: Client, artist: Any) -> None:
    artist.is_active = False
    artist.save()
    client.post("/login/", {"username": "émile", "password": "pw-émile-1"})
    assert not logged_in(client)


def test_log_out_is_a_post_that_returns_to_the_login(client: Client, artist: Any) -> None:
    client.force_login(artist)
    assert client.get("/logout/").status_code == 405  # a link or an <img> cannot log you out
    assert logged_in(client)
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not logged_in(client)


def test_staff_still_use_the_admin_and_see_its_link(client: Client, alice: Any) -> None:
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "alice", "password": "pw-alice-1"}
    )
    assert response.status_code == 302 and logged_in(client)
    assert 'href="/admin/"' in client.get("/").content.decode()


def test_favicon_is_served_on_every_page(client: Client) -> None:
    response = client.get("/favicon.ico")  # no login: browsers ask before anyone logs in
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.ico"
    found = finders.find("img/favicon.ico")  # what collectstatic ships and whitenoise serves
    assert found and Path(found).read_bytes()[:4] == b"\x00\x00\x01\x00"  # an ICO file
