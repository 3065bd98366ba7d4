"""Signed links open images in the browser and download everything else (issue 13, item 10):
local links served by the signed view, OSS links through the fake server."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.test import Client

from renderhub.storage.base import inline_type
from renderhub.storage.local import LocalStorage
from renderhub.storage.oss import OSSStorage

pytestmark = pytest.mark.urls("tests.storage.urls_signed")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("frame_0001.png", "image/png"),
        ("shot 1 ü.JPG", "image/jpeg"),
        ("thumb.jpeg", "image/jpeg"),
        ("anim.gif", "image/gif"),
        ("still.webp", "image/webp"),
        ("frame_0001.exr", None),  # no browser shows these
        ("logo.svg", None),  # script inside: never inline
        ("page.html", None),
        ("scene.blend", None),
        ("noext", None),
    ],
)
def test_only_raster_images_are_shown_inline(name: str, kind: str | None) -> None:
    assert inline_type(name) == kind


@pytest.fixture(autouse=True)
def _without_login_middleware(settings: Any) -> None:
    login = "django.contrib.auth.middleware.LoginRequiredMiddleware"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != login]


def test_a_local_link_to_an_image_opens_it(local_storage: LocalStorage) -> None:
    local_storage.write("renders/frame 0001.png", b"\x89PNG pixels")
    response = Client().get(local_storage.signed_url("renders/frame 0001.png"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="frame 0001.png"'
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["frame.exr", "logo.svg", "notes.html"])
def test_a_local_link_to_anything_else_downloads(local_storage: LocalStorage, name: str) -> None:
    local_storage.write(name, b"<svg onload=alert(1)>")
    response = Client().get(local_storage.signed_url(name))
    assert response["Content-Disposition"].startswith("attachment;")


def test_an_oss_link_to_an_image_opens_it(oss_storage: OSSStorage) -> None:
    oss_storage.write("renders/frame 0001 ü.png", b"\x89PNG")  # stored as octet-stream
    response = requests.get(oss_storage.signed_url("renders/frame 0001 ü.png"), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("inline;")
    assert "frame%200001%20%C3%BC.png" in response.headers["Content-Disposition"]


def test_an_oss_link_to_anything_else_downloads(oss_storage: OSSStorage) -> None:
    oss_storage.write("logo.svg", b"<svg/>")
    response = requests.get(oss_storage.signed_url("logo.svg"), timeout=5)
    assert response.headers["Content-Disposition"].startswith("attachment;")
