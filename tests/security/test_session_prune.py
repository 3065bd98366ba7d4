"""Pruning left-over render sessions (renderhub.node.agent_session.prune_sessions) is
steered by files in a session's folder: its lock and the record of its output folder.
Whoever could write there (a renderer run without a sandbox runs as the worker's user)
plants links, FIFOs and records to make the prune delete or hang on something else."""

from __future__ import annotations

import os
import time
from pathlib import Path

from renderhub.node.agent_session import prune_sessions


def _old(folder: Path) -> Path:
    then = time.time() - 2 * 3600
    os.utime(folder, (then, then), follow_symlinks=False)
    return folder


def _precious(tmp_path: Path, name: str = "renders") -> Path:
    folder = tmp_path / "project" / name
    folder.mkdir(parents=True)
    (folder / "final_0001.exr").write_bytes(b"a studio's frame")
    return folder


def test_a_record_naming_a_project_folder_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "work"
    folder = root / "job-1" / "session-abc"
    folder.mkdir(parents=True)
    precious = _precious(tmp_path)
    (folder / "output_dir").write_text(str(precious))
    _old(folder)

    assert prune_sessions(root) == 1
    assert not folder.exists() and (precious / "final_0001.exr").is_file()


def test_a_record_naming_a_link_of_the_sessions_name_deletes_nothing_behind_it(
    tmp_path: Path,
) -> None:
    # The name matches, but it is a link to the project's folder: never followed.
    root = tmp_path / "work"
    folder = root / "job-1" / "session-abc"
    folder.mkdir(parents=True)
    precious = _precious(tmp_path)
    decoy = tmp_path / "elsewhere" / "session-abc"
    decoy.parent.mkdir()
    decoy.symlink_to(precious, target_is_directory=True)
    (folder / "output_dir").write_text(str(decoy))
    _old(folder)

    prune_sessions(root)
    assert (precious / "final_0001.exr").is_file()


def test_a_linked_record_or_lock_is_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "work"
    precious = _precious(tmp_path)
    linked_record = root / "job-1" / "session-rec"
    linked_record.mkdir(parents=True)
    (linked_record / "output_dir").symlink_to(tmp_path / "project" / "pointer")
    (tmp_path / "project" / "pointer").write_text(str(precious))
    linked_lock = root / "job-1" / "session-lock"
    linked_lock.mkdir()
    (linked_lock / "session.lock").symlink_to(precious / "final_0001.exr")
    for folder in (linked_record, linked_lock):
        _old(folder)

    prune_sessions(root)

    assert (precious / "final_0001.exr").is_file()
    assert not linked_record.exists(), "its record was not read: the folder alone went"
    assert linked_lock.is_dir(), "a lock that is not a plain file: left alone"


def test_prune_is_not_held_up_by_a_fifo_in_a_session_folder(tmp_path: Path) -> None:
    # FIFOs where the lock and the record go: opening them would block the prune (and
    # the chunk staging that runs it) for good.
    root = tmp_path / "work"
    odd, plain = root / "job-1" / "session-fifo", root / "job-1" / "session-rec"
    odd.mkdir(parents=True)
    plain.mkdir()
    os.mkfifo(odd / "session.lock")
    os.mkfifo(plain / "output_dir")
    for folder in (odd, plain):
        _old(folder)

    assert prune_sessions(root) == 1  # the odd lock: left alone; the FIFO record: ignored
    assert odd.is_dir() and not plain.exists()
