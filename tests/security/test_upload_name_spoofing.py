"""File names that show colleagues another name: a text-direction override makes
"x\u202egnp.html" read "xlmth.png" in the storage browser, and C1 controls (NEL…) break
the lines names are printed on. Uploads with them are refused and write nothing; ordinary
Unicode (accents, CJK, emoji, right-to-left scripts) still goes up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.projects.upload_helpers import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenes(project: Any) -> str:
    project.mappings.update(writable=True)
    return str(project.mappings.get().source)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "path",
    [
        "evil\u202egnp.html",  # RIGHT-TO-LEFT OVERRIDE
        "shot\u202dfinal.blend",  # LEFT-TO-RIGHT OVERRIDE
        "a\u2066b\u2069.blend",  # isolates
        "x\u200f.blend",  # RIGHT-TO-LEFT MARK
        "sub\u061c/x.blend",  # ARABIC LETTER MARK, in a folder name
        "line\u0085break.blend",  # NEL, a C1 control
        "esc\u009b31m.blend",  # CSI, a C1 control
    ],
)
def test_names_that_display_as_something_else_are_refused(
    project: Any, scenes: str, bob: Any, storage_root: Path, path: str
) -> None:
    response = upload(_client(bob), project, scenes, path, b"evil")
    assert response.status_code == 400
    assert "control characters" in response.json()["error"]
    assert _files(storage_root) == []


@pytest.mark.parametrize(
    "path", ["café é.blend", "镜头/场景.blend", "\U0001f3ac shot.blend", "שוט/סצנה.blend"]
)
def test_ordinary_unicode_names_still_upload(
    project: Any, scenes: str, bob: Any, storage_root: Path, path: str
) -> None:
    assert upload(_client(bob), project, scenes, path, b"ok").status_code == 200
    assert _files(storage_root) == [f"scenes/{path}"]
