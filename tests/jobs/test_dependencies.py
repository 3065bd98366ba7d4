"""Dependency analysis of real scenes: every file each needs, classified (jobs.dependencies)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.dependencies import (
    FOUND,
    IN_STORAGE,
    MISSING,
    TRANSLATED,
    UNTRANSLATED,
    analyse_scene,
)
from renderhub.blend import deps
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree

pytestmark = pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")


@pytest.fixture
def tree(storage_root: Path, project: Any) -> Path:
    """The studio tree in the project's mapped folder, whose artists' paths are P:\\projects\\
    on Windows and /Volumes/projects/ on macOS."""
    mapping = project.mappings.get()
    mapping.artist_paths = f"{WIN_PREFIX}\n{MAC_PREFIX}"
    mapping.save()
    return build_tree(storage_root / "scenes")


def by_path(report: Any) -> dict[str, Any]:
    return {d.path: d for d in report.dependencies}


def test_every_kind_of_reference_is_found_and_classified(
    tree: Path, project: Any, storage_url: str
) -> None:
    report = analyse_scene(project, storage_url + "scenes/shots/all.blend")
    found = by_path(report)
    assert report.problems == [] and report.warnings == []
    assert found["//tex/a.png"].state == IN_STORAGE
    assert found["//../assets/tex/checker.png"].location == (
        storage_url + "scenes/assets/tex/checker.png"
    )
    win = next(d for p, d in found.items() if p.startswith("P:"))
    assert (win.state, win.location) == (TRANSLATED, storage_url + "scenes/win/tex/win.png")
    library = found["//../lib/lib.blend"]
    assert (library.kind, library.state) == (deps.LIBRARY, IN_STORAGE)
    # The library's own texture, relative to the library, followed recursively.
    lib_tex = found["//tex/lib.png"]
    assert lib_tex.used_by == storage_url + "scenes/lib/lib.blend"
    assert lib_tex.location == storage_url + "scenes/lib/tex/lib.png"
    sequence = found["//seq/frame_0001.png"]
    assert sequence.kind == deps.SEQUENCE
    assert [f.rsplit("/", 1)[1] for f in sequence.files] == [
        "frame_0001.png",
        "frame_0002.png",
        "frame_0003.png",
    ]
    udim = found[MAC_PREFIX + "assets/wood/wood.<UDIM>.png"]
    assert (udim.kind, udim.state, len(udim.files)) == (deps.UDIM, TRANSLATED, 2)
    names = sorted(f.removeprefix(storage_url + "scenes/") for f in report.files())
    assert names == [
        "assets/tex/checker.png",
        "assets/wood/wood.1001.png",
        "assets/wood/wood.1002.png",
        "lib/lib.blend",
        "lib/tex/lib.png",
        "shots/all.blend",
        "shots/seq/frame_0001.png",
        "shots/seq/frame_0002.png",
        "shots/seq/frame_0003.png",
        "shots/tex/a.png",
        "win/tex/win.png",
    ]  # not notes.txt, not the .blend1 backup


def test_a_missing_texture_is_named_with_where_it_was_looked_for(
    tree: Path, project: Any, storage_url: str
) -> None:
    report = analyse_scene(project, storage_url + "scenes/shots/gone.blend")
    [gone] = report.problems
    assert (gone.path, gone.state) == ("//tex/gone.png", MISSING)
    assert gone.location == storage_url + "scenes/shots/tex/gone.png"
    assert "//tex/gone.png" in report.problem_text() and "missing" in report.problem_text()


def test_an_absolute_path_no_mapping_stands_for_is_untranslated(
    tree: Path, project: Any, storage_url: str
) -> None:
    project.mappings.update(artist_paths="/Volumes/projects/")
    report = analyse_scene(project, storage_url + "scenes/shots/all.blend")
    [win] = report.problems
    assert win.path.startswith("P:") and win.state == UNTRANSLATED
    assert win.location == ""


def test_a_local_scene_is_analysed_on_its_own_disk(
    tree: Path, project: Any, tmp_path: Path, storage_url: str
) -> None:
    local = tmp_path / "studio"
    shutil.copytree(tree, local)
    report = analyse_scene(project, local / "shots" / "all.blend")
    found = by_path(report)
    assert found["//../assets/tex/checker.png"].state == FOUND
    assert found["//../assets/tex/checker.png"].location == str(local / "assets/tex/checker.png")
    assert found["//tex/lib.png"].location == str(local / "lib/tex/lib.png")
    # An artists' path is found in storage (the mapping), not on this disk.
    win = next(d for p, d in found.items() if p.startswith("P:"))
    assert (win.state, win.location) == (TRANSLATED, storage_url + "scenes/win/tex/win.png")


@pytest.mark.parametrize(
    ("path", "prefix", "rest"),
    [
        ("P:\\projects\\win\\tex\\a b.png", "P:\\projects\\", "win/tex/a b.png"),
        ("p:/Projects/win/tex/a.png", "P:\\projects\\", "win/tex/a.png"),
        ("\\\\nas\\share\\tex\\ü.png", "\\\\NAS\\share", "tex/ü.png"),
        ("/Volumes/projects/tex/a.png", "/Volumes/projects/", "tex/a.png"),
        ("/Volumes/Projects/tex/a.png", "/Volumes/projects/", None),  # POSIX: case counts
        ("/Volumes/projects2/a.png", "/Volumes/projects", None),
    ],
)
def test_translate(path: str, prefix: str, rest: str | None) -> None:
    result = deps.translate(path, [(prefix, "oss://b/p/")])
    assert (result[1] if result else None) == rest


@pytest.mark.parametrize(
    ("name", "matches", "not_matches"),
    [
        (
            "frame_0001.png",
            ["frame_0002.png", "frame_12345.png"],
            ["frame_0001.jpg", "xframe_1.png"],
        ),
        ("wood.<UDIM>.exr", ["wood.1001.exr", "wood.1012.exr"], ["wood.101.exr", "wood.1001.png"]),
        ("t_<UVTILE>.png", ["t_u1_v1.png"], ["t_1001.png"]),
        ("render 7", ["render 8"], ["render 8.png"]),
    ],
)
def test_sequence_pattern(name: str, matches: list[str], not_matches: list[str]) -> None:
    pattern = deps.sequence_pattern(name)
    assert pattern is not None
    assert all(pattern.match(n) for n in matches)
    assert not any(pattern.match(n) for n in not_matches)


def test_one_reading_gives_the_same_facts_and_references_as_two(
    tree: Path, project: Any, storage_url: str
) -> None:
    from renderhub.blend.facts import read_scene_facts

    scene = tree / "shots" / "all.blend"
    reading = deps.read_scene(scene)

    assert reading.facts() == read_scene_facts(scene)
    assert sorted(reading.references(), key=repr) == sorted(deps.read_references(scene), key=repr)
    url = storage_url + "scenes/shots/all.blend"
    with_reading = analyse_scene(project, url, local=scene, reading=reading)
    assert by_path(with_reading) == by_path(analyse_scene(project, url))
