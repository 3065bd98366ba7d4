"""The agents a worker process keeps between a job's chunks (renderhub.node.agent_session):
only the same job gets one back, a slot that moves to another job closes them, and an
unused one is closed after its seconds. Real ``--session`` agents (no renderer started)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from renderhub.node.agent_session import AgentSession, KeptSessions, prune_sessions


@pytest.fixture
def keeper() -> Iterator[KeptSessions]:
    kept = KeptSessions()
    yield kept
    kept.close()


def start(tmp_path: Path, key: str, n: int = 0) -> AgentSession:
    return AgentSession(key, tmp_path / f"{key}-{n}", tmp_path / f"{key}-{n}-out")


def ended(session: AgentSession, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while session.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not session.alive()


def test_the_same_job_gets_its_session_back(keeper: KeptSessions, tmp_path: Path) -> None:
    session = start(tmp_path, "job-1")
    keeper.keep(session, 30)
    assert keeper.take("job-1") is session and session.alive()
    assert keeper.take("job-1") is None, "taken: it serves one chunk at a time"
    session.kill()


def test_a_slot_moving_to_another_job_closes_the_kept_session(
    keeper: KeptSessions, tmp_path: Path
) -> None:
    session = start(tmp_path, "job-1")
    keeper.keep(session, 30)

    assert keeper.take("job-2") is None
    # Ended before the new job's renderer starts: two scenes never share the slot's memory.
    assert not session.alive(), "the other job's agent and its renderer are gone"
    assert not session.directory.exists() and not session.output_dir.exists()


def test_keeping_another_jobs_session_closes_the_first(keeper: KeptSessions, tmp_path: Path):
    first, second = start(tmp_path, "job-1"), start(tmp_path, "job-2")
    keeper.keep(first, 30)
    keeper.keep(second, 30)
    assert ended(first)
    assert keeper.take("job-2") is second
    second.kill()


def test_slots_of_one_job_each_keep_theirs(keeper: KeptSessions, tmp_path: Path) -> None:
    a, b = start(tmp_path, "job-1", 1), start(tmp_path, "job-1", 2)
    keeper.keep(a, 30)
    keeper.keep(b, 30)
    assert {keeper.take("job-1"), keeper.take("job-1")} == {a, b}
    a.kill()
    b.kill()


def test_an_unused_session_is_closed_after_its_seconds(keeper: KeptSessions, tmp_path: Path):
    session = start(tmp_path, "job-1")
    keeper.keep(session, 0.3)
    assert ended(session, within=10)
    assert keeper.take("job-1") is None


def test_a_dead_session_is_not_given_back(keeper: KeptSessions, tmp_path: Path) -> None:
    session = start(tmp_path, "job-1")
    keeper.keep(session, 30)
    session.process.kill()
    session.process.wait()
    assert keeper.take("job-1") is None


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(folder, (then, then))


def _locked(session: AgentSession, within: float = 10) -> None:
    """Wait until the agent holds its folder's lock (it takes it when it starts)."""
    deadline = time.monotonic() + within
    while not (session.directory / "session.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def test_prune_removes_what_a_dead_sessions_left_and_spares_a_running_one(tmp_path: Path):
    # A worker process that exited while keeping a session leaves its folders: they go
    # once old, with the renderer's output folder; a running session's never do.
    root = tmp_path / "work"
    outputs = tmp_path / "outputs" / "job-7"
    running = AgentSession("job-7-a", root / "job-7" / "session-aaa", outputs / "session-aaa")
    dead = AgentSession("job-7-b", root / "job-7" / "session-bbb", outputs / "session-bbb")
    for session in (running, dead):
        session.output_dir.mkdir(parents=True)
        (session.output_dir / "shot_0001.png").write_bytes(b"partial")
        _locked(session)
    dead.process.kill()  # as when its worker process was killed: nobody cleans up
    dead.process.wait()
    fresh = root / "job-8" / "session-ccc"  # its agent about to start: no lock yet
    fresh.mkdir(parents=True)
    for folder in (running.directory, dead.directory):
        _age(folder, 2 * 3600)

    assert prune_sessions(root) == 1

    assert not dead.directory.exists() and not dead.output_dir.exists()
    assert running.directory.is_dir() and running.output_dir.is_dir() and running.alive()
    assert fresh.is_dir(), "a new folder is left to the agent about to start in it"
    running.kill()
