"""Uploads into local storage from the storage browser: whole files, pieces, resuming,
folders kept, odd names, limits, and nothing half-written under a final name."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from projects import uploads
from renderhub.storage import chunked

from .upload_helpers import complete, put, start, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenes(project: Any) -> str:
    """The project's mapped folder, made writable (uploads need that)."""
    mapping = project.mappings.get()
    mapping.writable = True
    mapping.save()
    return str(mapping.source)


@pytest.fixture
def as_bob(client: Client, bob: Any) -> Client:
    client.force_login(bob)
    return client


def _visible_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".renderhub-tmp-")
    )


@pytest.mark.parametrize(
    "path",
    [
        "shot_a.blend",
        "seq 01/shot b.blend",  # spaces, and a sub-folder made on the way
        "Szene/Straße - ünïcödé 镜头.blend",
        "a/b/c/d/e/deep.blend",
        "name with #hash and %25 and ?.blend",
    ],
)
def test_a_file_lands_under_its_path_in_the_folder(
    as_bob: Client, project: Any, scenes: str, storage_root: Path, path: str
) -> None:
    data = os.urandom(3000)
    response = upload(as_bob, project, scenes, path, data)
    assert response.status_code == 200, response.content
    assert (storage_root / "scenes" / path).read_bytes() == data
    assert _visible_files(storage_root / "scenes") == [path]
    # The answer names the file by its storage URL, as the browser lists it.
    assert response.json()["file"].startswith(scenes)


def test_a_folder_upload_keeps_its_structure(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    files = {
        "robot/robot.blend": b"BLENDER-v304",
        "robot/textures/metal.png": b"\x89PNG",
        "robot/textures/old/rust.jpg": b"\xff\xd8",
    }
    for path, data in files.items():
        assert upload(as_bob, project, scenes + "uploads/", path, data).status_code == 200
    assert _visible_files(storage_root / "scenes") == sorted(f"uploads/{p}" for p in files)


def test_big_files_go_in_pieces_and_resume_after_a_lost_answer(
    as_bob: Client, project: Any, scenes: str, storage_root: Path, settings: Any
) -> None:
    settings.UPLOAD_CHUNK_BYTES = 1000
    data = os.urandom(2500)
    answer = start(as_bob, project, scenes, "big.blend", len(data)).json()
    assert answer["chunk_size"] == 1000
    token = answer["upload"]
    assert put(as_bob, project, token, 0, data[:1000]).json() == {"offset": 1000}
    # The answer to the next piece was lost: the browser sends it again, then asks.
    assert put(as_bob, project, token, 1000, data[1000:2000]).json() == {"offset": 2000}
    again = put(as_bob, project, token, 1000, data[1000:2000])
    assert again.status_code == 409 and again.json()["offset"] == 2000
    assert as_bob.get(f"/projects/{project.pk}/uploads/{token}/").json() == {"offset": 2000}
    # Nothing under the final name until the last byte is in and the upload completed.
    assert not (storage_root / "scenes" / "big.blend").exists()
    early = complete(as_bob, project, token)
    assert early.status_code == 409 and "2000 of 2500" in early.json()["error"]
    assert put(as_bob, project, token, 2000, data[2000:]).json() == {"offset": 2500}
    assert complete(as_bob, project, token).status_code == 200
    assert (storage_root / "scenes" / "big.blend").read_bytes() == data
    assert _visible_files(storage_root / "scenes") == ["big.blend"]
    assert not list((storage_root / "scenes").glob(".renderhub-tmp-*"))


def test_a_piece_larger_than_the_setting_is_refused(
    as_bob: Client, project: Any, scenes: str, settings: Any
) -> None:
    settings.UPLOAD_CHUNK_BYTES = 100
    token = start(as_bob, project, scenes, "x.blend", 500).json()["upload"]
    response = put(as_bob, project, token, 0, b"x" * 101)
    assert response.status_code == 413
    assert "UPLOAD_CHUNK_BYTES" in response.json()["error"]


def test_bytes_beyond_the_announced_size_are_refused(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    token = start(as_bob, project, scenes, "x.blend", 10).json()["upload"]
    assert put(as_bob, project, token, 0, b"y" * 11).status_code == 400
    assert as_bob.get(f"/projects/{project.pk}/uploads/{token}/").json() == {"offset": 0}


def test_files_bigger_than_the_limit_are_refused_before_a_byte_moves(
    as_bob: Client, project: Any, scenes: str, settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 1000
    response = start(as_bob, project, scenes, "huge.blend", 1001)
    assert response.status_code == 413
    assert "UPLOAD_MAX_BYTES" in response.json()["error"]


def test_an_empty_file_is_a_file(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    assert upload(as_bob, project, scenes, "empty.txt", b"").status_code == 200
    assert (storage_root / "scenes" / "empty.txt").read_bytes() == b""


def test_an_upload_replaces_an_older_file_of_that_name(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    target = storage_root / "scenes" / "shot.blend"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"old")
    token = start(as_bob, project, scenes, "shot.blend", 3).json()["upload"]
    put(as_bob, project, token, 0, b"new")
    assert target.read_bytes() == b"old"  # readers see the old file until completion
    complete(as_bob, project, token)
    assert target.read_bytes() == b"new"


def test_a_piece_cut_short_is_taken_back(tmp_path: Path) -> None:
    """A client killed mid-piece: the partial keeps only whole pieces, the offset holds."""
    partial = tmp_path / f"{chunked.PARTIAL_PREFIX}{'a' * 32}"
    assert chunked.append(partial, 0, io.BytesIO(b"x" * 10), 10, 30) == 10
    with pytest.raises(chunked.StorageError, match="ended 5 bytes early"):
        chunked.append(partial, 10, io.BytesIO(b"y" * 5), 10, 30)
    assert chunked.offset(partial) == 10
    assert partial.read_bytes() == b"x" * 10


def test_a_cancelled_upload_leaves_nothing(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    token = start(as_bob, project, scenes, "gone/x.blend", 6).json()["upload"]
    put(as_bob, project, token, 0, b"abc")
    assert as_bob.delete(f"/projects/{project.pk}/uploads/{token}/").status_code == 204
    assert not [p for p in (storage_root / "scenes").rglob("*") if p.is_file()]


def test_stale_partial_uploads_are_cleaned(
    as_bob: Client, project: Any, scenes: str, storage_root: Path, settings: Any
) -> None:
    settings.UPLOAD_STALE_SECONDS = 60
    stale = start(as_bob, project, scenes, "stale.blend", 6).json()["upload"]
    put(as_bob, project, stale, 0, b"abc")
    fresh = start(as_bob, project, scenes, "fresh.blend", 6).json()["upload"]
    put(as_bob, project, fresh, 0, b"abc")
    partials = sorted((storage_root / "scenes").glob(".renderhub-tmp-upload-*"))
    assert len(partials) == 2
    # The stale one was last touched two minutes ago (its registry note too).
    old = time.time() - 120
    [stale_partial] = [p for p in partials if p.name.endswith(_upload_id(stale))]
    os.utime(stale_partial, (old, old))
    os.utime(Path(settings.VAR_DIR) / "uploads" / _upload_id(stale), (old, old))
    assert uploads.clean_stale_uploads() == 1
    assert not stale_partial.exists()
    assert put(as_bob, project, fresh, 3, b"def").json() == {"offset": 6}
    assert complete(as_bob, project, fresh).status_code == 200


def _upload_id(token: str) -> str:
    from django.core import signing

    return str(signing.TimestampSigner(salt=uploads.TOKEN_SALT).unsign_object(token)["i"])


def test_the_link_of_an_upload_expires(
    as_bob: Client, project: Any, scenes: str, settings: Any, monkeypatch: Any
) -> None:
    token = start(as_bob, project, scenes, "x.blend", 3).json()["upload"]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + settings.UPLOAD_STALE_SECONDS + 5)
    response = put(as_bob, project, token, 0, b"abc")
    assert response.status_code == 404
    assert "start it again" in response.json()["error"]


def test_beat_cleans_stale_uploads_hourly(
    as_bob: Client, project: Any, scenes: str, storage_root: Path, settings: Any
) -> None:
    from projects.tasks import clean_stale_uploads
    from renderhub.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["clean-stale-uploads"]
    assert entry["task"] in app.tasks and entry["schedule"] == 3600.0
    settings.VAR_DIR = storage_root.parent / "var-own"  # no earlier test's partials in it
    token = start(as_bob, project, scenes, "left.blend", 6).json()["upload"]
    put(as_bob, project, token, 0, b"abc")
    [partial] = (storage_root / "scenes").glob(".renderhub-tmp-upload-*")
    settings.UPLOAD_STALE_SECONDS = 0
    assert clean_stale_uploads() == 1  # called as beat calls it, in-process
    assert not partial.exists()


def test_a_piece_bigger_than_djangos_in_memory_limit_streams_to_disk(
    as_bob: Client, project: Any, scenes: str, storage_root: Path, settings: Any
) -> None:
    """Pieces are streamed from the request, not read into request.body (which Django caps
    at DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB)."""
    data = os.urandom(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024)
    assert len(data) <= settings.UPLOAD_CHUNK_BYTES  # one piece
    assert upload(as_bob, project, scenes, "big piece.blend", data).status_code == 200
    assert (storage_root / "scenes" / "big piece.blend").read_bytes() == data


def test_completing_twice_answers_the_same(
    as_bob: Client, project: Any, scenes: str, storage_root: Path
) -> None:
    """The answer to the completion was lost and the browser asks again: same file, no error."""
    token = start(as_bob, project, scenes, "twice.blend", 3).json()["upload"]
    put(as_bob, project, token, 0, b"abc")
    first = complete(as_bob, project, token)
    again = complete(as_bob, project, token)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert (storage_root / "scenes" / "twice.blend").read_bytes() == b"abc"
    # But no more bytes go in after it, not even from the start.
    for offset, data in ((3, b"d"), (0, b"xyz")):
        response = put(as_bob, project, token, offset, data)
        assert response.status_code == 404 and "start it again" in response.json()["error"]
    assert (storage_root / "scenes" / "twice.blend").read_bytes() == b"abc"
    assert not list((storage_root / "scenes").glob(".renderhub-tmp-*"))
