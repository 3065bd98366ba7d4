"""Issue 13, item 6: the scene facts read at submit come from files project members chose.

A member submits a .blend crafted to make the reader loop and grow (a DNA catalogue that
claims four billion names), a decompression bomb, and, on OSS, a scene bigger than the
manager should fetch. Each submit answers promptly, with a warning that the facts went
unchecked: the web process neither hangs nor fills its memory or disk, and a scene over
SCENE_FACTS_MAX_DOWNLOAD is never downloaded.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from jobs import services
from jobs.models import RenderJob
from tests.jobs.scene_files import blender_installed, build_scene_files
from tests.jobs.test_scene_facts_reader import hostile_file

pytestmark = pytest.mark.django_db


def submit_as(user: Any, project: Any, software: Any, cluster: Any, url: str) -> Any:
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[url], frames="1-2"
    )
    return services.submit_render(request, user)


def test_a_scene_that_makes_the_reader_loop_is_cut_off(
    settings: Any,
    bob: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
) -> None:
    settings.SCENE_FACTS_TIMEOUT = 2.0
    settings.SCENE_FACTS_MAX_MEMORY = 150 << 20
    (storage_root / "scenes").mkdir()
    hostile_file(storage_root / "scenes" / "loop.blend")

    started = time.monotonic()
    jobs = submit_as(bob, project, blender_software, cluster, storage_url + "scenes/loop.blend")

    assert time.monotonic() - started < 15
    [warning] = jobs.warnings
    assert warning.startswith("loop.blend: its scene facts could not be read (")
    assert any(
        why in warning
        for why in ("needed more memory than the reader may use", "took longer than 2 s")
    )


def test_a_decompression_bomb_is_not_unpacked_past_the_limit(
    settings: Any,
    bob: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
) -> None:
    settings.SCENE_FACTS_MAX_BYTES = 16 << 20
    (storage_root / "scenes").mkdir()
    bomb = storage_root / "scenes" / "bomb.blend"
    bomb.write_bytes(gzip.compress(b"BLENDER-v304" + b"\0" * (200 << 20), compresslevel=1))

    jobs = submit_as(bob, project, blender_software, cluster, storage_url + "scenes/bomb.blend")

    assert jobs.warnings == [
        "bomb.blend: its scene facts could not be read (it unpacks to more than 16 MiB); its "
        "frame range and scenes were not checked."
    ]


@pytest.mark.skipif(not blender_installed(), reason="blender is not installed")
def test_an_oss_scene_is_fetched_only_under_the_download_cap(
    settings: Any,
    alice: Any,
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    cloud_oss: Any,
    bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blends = build_scene_files(tmp_path_factory.mktemp("blends"))
    data = blends["range"].read_bytes()  # frames 1-250
    # A scratch folder of this test's own: other tests running alongside fetch scenes too.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("scratch")))
    cloud_oss.put(bucket, "scenes/range.blend", data)
    url = f"oss://{bucket}/scenes/range.blend"

    def fetches() -> int:
        return sum(r.method == "GET" and r.key == "scenes/range.blend" for r in cloud_oss.requests)

    settings.SCENE_FACTS_MAX_DOWNLOAD = len(data) - 1
    request = services.RenderRequest(
        project=cloud_project,
        software=cloud_software,
        cluster=cloud_cluster,
        scenes=[url],
        frames="300-302",
    )
    jobs = services.submit_render(request, alice)
    assert fetches() == 0
    [warning] = jobs.warnings
    assert f"(it is {len(data)} bytes, over SCENE_FACTS_MAX_DOWNLOAD ({len(data) - 1} bytes)" in (
        warning
    )

    settings.SCENE_FACTS_MAX_DOWNLOAD = len(data)
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("renderhub-scene-*"))
    with pytest.raises(services.SubmissionError, match="outside its frame range 1-250"):
        services.submit_render(request, alice)
    assert fetches() == 1
    assert RenderJob.objects.count() == 1
    assert set(scratch.glob("renderhub-scene-*")) <= before, "the fetched copy is removed"
