"""The local worker's chunk output folders (jobs.output_root): made private under the
project's node temp output dir, and refused wherever someone else could decide where the
frames go or where RenderHub keeps its own files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jobs.output_root import OutputRootRefused, chunk_output_dir
from renderhub.sandbox_paths import output_root_refusal

NOBODY = 65534


def test_the_chunks_folder_is_made_private_under_the_root(tmp_path: Path) -> None:
    folder = chunk_output_dir(f"{tmp_path}/out/shots/", 7, "task-0-attempt-1")
    assert folder == tmp_path / "out" / "shots" / "job-7" / "task-0-attempt-1"
    for made in (folder, folder.parent, folder.parent.parent, tmp_path / "out"):
        assert made.is_dir() and made.stat().st_mode & 0o077 == 0, made
    assert chunk_output_dir(f"{tmp_path}/out/shots", 7, "task-0-attempt-1") == folder  # again


def test_a_root_reached_through_a_link_is_used_where_the_link_leads(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    folder = chunk_output_dir(f"{tmp_path}/alias/", 3, "session-ab")
    assert folder == tmp_path / "real" / "job-3" / "session-ab"  # no link left in the path


@pytest.mark.parametrize("plant", ["link", "file"])
def test_something_planted_where_the_jobs_folder_goes_is_refused(
    tmp_path: Path, plant: str
) -> None:
    (tmp_path / "out").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    if plant == "link":
        (tmp_path / "out" / "job-5").symlink_to(victim)
    else:
        (tmp_path / "out" / "job-5").write_text("")
    with pytest.raises(OutputRootRefused, match="is a link or a file") as refused:
        chunk_output_dir(f"{tmp_path}/out/", 5, "task-0-attempt-1")
    assert refused.value.machine  # this machine's folders: another worker may do
    assert list(victim.iterdir()) == []


def test_a_folder_others_may_rename_in_is_refused_even_if_ours(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as a umask of 0 leaves it: anyone could swap "output" for a link
    with pytest.raises(OutputRootRefused, match="chmod go-w"):
        chunk_output_dir(f"{shared}/output/", 1, "task-0-attempt-1")
    assert list(shared.iterdir()) == []  # nothing made there
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert chunk_output_dir(f"{shared}/output/", 1, "task-0-attempt-1").is_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_of_another_user_on_the_way_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "renderhub"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(OutputRootRefused, match="belongs to another user"):
        chunk_output_dir(f"{theirs}/output/", 1, "task-0-attempt-1")
    assert list(theirs.iterdir()) == []


def test_a_link_loop_is_refused_not_crashed_on(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OutputRootRefused, match="cannot be followed"):
        chunk_output_dir(f"{tmp_path}/loop/", 1, "task-0-attempt-1")


@pytest.mark.parametrize("root", ["relative/out/", "D:\\out\\", ""])
def test_a_path_that_is_not_absolute_here_is_refused(root: str) -> None:
    assert "not an absolute path" in (output_root_refusal(root) or "")


def test_renderhubs_own_folders_are_refused_but_the_work_folders_output(
    settings: Any, tmp_path: Path
) -> None:
    work = Path(settings.RENDER_WORK_DIR)
    assert output_root_refusal(f"{work}/output/") is None
    assert output_root_refusal(f"{work}/output/shots/") is None
    assert "render work folder" in (output_root_refusal(f"{work}/") or "")
    assert "render work folder" in (output_root_refusal(f"{work}/outputs/") or "")
    assert "local storage" in (output_root_refusal(f"{settings.LOCAL_STORAGE_ROOT}/a/") or "")
    # Storage nested in the set-aside folder stays storage.
    settings.LOCAL_STORAGE_ROOT = work / "output" / "storage"
    assert "local storage" in (output_root_refusal(f"{work}/output/storage/p/") or "")
    assert output_root_refusal(f"{work}/output/shots/") is None
    with pytest.raises(OutputRootRefused, match="local storage") as refused:
        chunk_output_dir(f"{work}/output/storage/", 1, "task-0-attempt-1")
    assert not refused.value.machine  # the project's setting: the same on every node
