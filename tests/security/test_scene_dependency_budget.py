"""A scene cannot keep the manager busy comparing sequence folders (issue 14, review).

The attack: a .blend naming one big folder of frames thousands of ways (each a sequence
or UDIM reference) made the dependency check list and match that folder once per
reference: minutes of manager time per submit or per ``POST /api/scenes/check/``. Now each
folder is listed once per analysis and the names compared are capped
(``MAX_NAMES_MATCHED``); past the cap the scene counts as unreadable, says so, and is
staged whole as any scene whose references cannot be read. The cap is lowered here so a
real scene built by Blender (an image sequence and a UDIM set) crosses it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs import dependencies, services
from jobs.dependencies import analyse_scene
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, blender_scene, build_tree

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


@pytest.fixture
def scene(storage_root: Path, project: Any, storage_url: str) -> str:
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    build_tree(storage_root / "scenes")
    return storage_url + "scenes/shots/all.blend"


def test_each_folder_is_listed_once_per_analysis(
    storage_root: Path, project: Any, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two sequences read from one folder, written two ways.
    frames = storage_root / "scenes" / "many" / "seq"
    blender_scene(
        storage_root / "scenes" / "many" / "two.blend",
        f"seq=//seq/frame_0001.png@{frames}/frame_0001.png",
        f"seq=//seq/../seq/frame_0001.png@{frames}/frame_0001.png",
    )
    listed: list[str] = []
    real = dependencies.StoragePlace.names

    def counting(self: Any, folder: str) -> list[str]:
        listed.append(folder)
        return real(self, folder)

    monkeypatch.setattr(dependencies.StoragePlace, "names", counting)
    report = analyse_scene(project, storage_url + "scenes/many/two.blend")

    assert [d.kind for d in report.dependencies if d.sequence] == ["image sequence"] * 2
    assert listed == [storage_url + "scenes/many/seq/"]


def test_past_the_budget_the_scene_is_unchecked_said_and_staged_whole(
    scene: str,
    project: Any,
    blender_software: Any,
    cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dependencies, "MAX_NAMES_MATCHED", 3)  # the sequence has 3, UDIM 2

    report = analyse_scene(project, scene)

    assert report.dependencies == []
    assert "were not checked" in report.unreadable
    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=blender_software, cluster=cluster, scenes=[scene], frames="1"
        )
    )
    assert any("were not checked" in w for w in job.warnings)
    assert job.scene_files["folder"] is True  # staged whole, as an unreadable scene is
