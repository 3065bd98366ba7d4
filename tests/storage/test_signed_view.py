"""Signed download links for local storage: made by LocalStorage.signed_url, served by
renderhub.storage.views.signed_download, usable without a session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from renderhub.storage.local import SIGNED_URL_SALT, LocalStorage

pytestmark = pytest.mark.urls("tests.storage.urls_signed")

LOGIN_MIDDLEWARE = "django.contrib.auth.middleware.LoginRequiredMiddleware"


@pytest.fixture(autouse=True)
def _without_login_middleware(settings: Any) -> None:
    # These tests are about the view; test_through_the_project_middleware covers the rest.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != LOGIN_MIDDLEWARE]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds to add to the real clock (as django.core.signing sees it)."""
    offset = [0.0]
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + offset[0])
    return offset


def fetch(url: str) -> Any:
    return Client().get(url)


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def test_a_signed_link_downloads_the_file(local_storage: LocalStorage) -> None:
    local_storage.write("renders/frame 0001.exr", b"pixels")
    url = local_storage.signed_url("renders/frame 0001.exr", expires=60)
    assert url.startswith("/storage/signed/") and url.endswith("/frame%200001.exr")
    response = fetch(url)
    assert response.status_code == 200
    assert body(response) == b"pixels"
    assert response["Content-Disposition"] == 'attachment; filename="frame 0001.exr"'
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_the_url_matches_the_named_route(local_storage: LocalStorage) -> None:
    local_storage.write("f.txt", b"x")
    url = local_storage.signed_url("f.txt")
    token = url.split("/")[3]
    assert url == reverse("storage-signed", args=[token, "f.txt"])


def test_unicode_file_names_survive(local_storage: LocalStorage) -> None:
    local_storage.write("ü/日本 #1.exr", b"x")
    response = fetch(local_storage.signed_url("ü/日本 #1.exr"))
    assert response.status_code == 200
    assert "filename*=utf-8''%E6%97%A5%E6%9C%AC%20%231.exr" in response["Content-Disposition"]


def test_the_token_does_not_reveal_the_disk_path(local_storage: LocalStorage) -> None:
    local_storage.write("a/b.exr", b"x")
    token = local_storage.signed_url("a/b.exr").split("/")[3]
    payload = signing.TimestampSigner(salt=SIGNED_URL_SALT).unsign_object(token)
    assert payload == {"k": "a/b.exr", "e": 3600}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: "x" + t,  # the payload
        lambda t: t.split(":")[0],  # signature removed
        lambda t: "garbage",
    ],
)
def test_a_tampered_token_is_refused(local_storage: LocalStorage, tamper: Any) -> None:
    local_storage.write("f", b"secret")
    url = local_storage.signed_url("f")
    token = url.split("/")[3]
    response = fetch(url.replace(token, tamper(token)))
    assert response.status_code == 403
    assert response.content == b"This link is invalid or has expired."


def test_a_token_for_another_key_cannot_be_forged(local_storage: LocalStorage) -> None:
    local_storage.write("public", b"ok")
    local_storage.write("private", b"no")
    forged = signing.TimestampSigner(salt="another salt").sign_object({"k": "private", "e": 60})
    assert fetch(f"/storage/signed/{forged}/private").status_code == 403
    other = signing.TimestampSigner(salt=SIGNED_URL_SALT, key="not the secret key")
    assert (
        fetch(f"/storage/signed/{other.sign_object({'k': 'private', 'e': 60})}/p").status_code
        == 403
    )


def test_a_link_expires_after_its_own_lifetime(
    local_storage: LocalStorage, clock: list[float]
) -> None:
    local_storage.write("f", b"pixels")
    url = local_storage.signed_url("f", expires=60)
    clock[0] = 59
    assert fetch(url).status_code == 200
    clock[0] = 61
    response = fetch(url)
    assert response.status_code == 403
    assert response.content == b"This link is invalid or has expired."


def test_signed_url_ttl_caps_every_link(
    local_storage: LocalStorage, settings: Any, clock: list[float]
) -> None:
    settings.SIGNED_URL_TTL = 100
    local_storage.write("f", b"pixels")
    url = local_storage.signed_url("f", expires=7 * 24 * 3600)
    clock[0] = 99
    assert fetch(url).status_code == 200
    clock[0] = 101
    assert fetch(url).status_code == 403


def test_a_link_to_a_deleted_file_is_not_found(local_storage: LocalStorage) -> None:
    local_storage.write("gone", b"x")
    url = local_storage.signed_url("gone")
    local_storage.delete("gone")
    assert fetch(url).status_code == 404


def test_a_token_naming_an_escaping_key_is_not_served(local_storage: LocalStorage) -> None:
    # Even a correctly signed token cannot reach outside the storage root.
    token = signing.TimestampSigner(salt=SIGNED_URL_SALT).sign_object({"k": "../x", "e": 60})
    assert fetch(f"/storage/signed/{token}/x").status_code == 404


def test_only_get_and_head_are_allowed(local_storage: LocalStorage) -> None:
    local_storage.write("f", b"x")
    url = local_storage.signed_url("f")
    assert Client().head(url).status_code == 200
    assert Client().post(url).status_code == 405


def test_links_are_only_made_for_files_under_local_storage_root(
    local_storage: LocalStorage, settings: Any, tmp_path: Any
) -> None:
    from renderhub.storage import StorageError

    elsewhere = LocalStorage(tmp_path / "elsewhere")
    elsewhere.write("f", b"x")
    with pytest.raises(StorageError, match="outside LOCAL_STORAGE_ROOT"):
        elsewhere.signed_url("f")
    # A backend rooted in a sub-folder (as default_storage may be) gets working links.
    sub = LocalStorage(local_storage.root / "sub")
    sub.write("g", b"in a sub-root")
    assert body(fetch(sub.signed_url("g"))) == b"in a sub-root"


def test_through_the_project_middleware(local_storage: LocalStorage, settings: Any) -> None:
    """Anonymous visitors (no session) can use a link with the project's middleware on."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_MIDDLEWARE]
    local_storage.write("f", b"x")
    response = fetch(local_storage.signed_url("f"))
    assert response.status_code == 200
