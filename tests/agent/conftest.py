"""Fixtures for the node agent: spec builders and ways to run the agent."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from renderhub.agent.events import CancelFlag
from renderhub.agent.runner import run
from renderhub.agent.spec import parse_spec

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FAKE_RENDERER = HERE / "fake_renderer.py"


@dataclass
class Result:
    """What one agent run reported."""

    exit_code: int
    events: list[dict[str, Any]]
    stderr: str = ""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    @property
    def finished(self) -> dict[str, Any]:
        assert self.events[-1]["event"] == "finished", self.events
        return self.events[-1]

    def frames(self, kind: str) -> list[int]:
        return [e["frame"] for e in self.of(kind)]


def check_contract(result: Result, frames: list[int]) -> None:
    """What every run promises: finished last and once; after started, each frame once."""
    kinds = [e["event"] for e in result.events]
    assert kinds.count("finished") == 1 and kinds[-1] == "finished", kinds
    assert result.finished["exit_code"] == result.exit_code
    if "started" in kinds:
        reported = result.frames("frame_done") + result.frames("frame_failed")
        assert sorted(reported) == frames, result.events
    else:
        assert not result.of("frame_done")


def parse_events(text: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    for event in events:
        assert isinstance(event["time"], float)
    return events


def _fake_command(*extra: str, python: tuple[str, ...] = (sys.executable,)) -> list[str]:
    return [
        *python,
        str(FAKE_RENDERER),
        "--out",
        "{output_pattern}",
        "--frames",
        "{frames}",
        *extra,
    ]


SpecFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def fake_command() -> Callable[..., list[str]]:
    """The fake renderer as a command template: fake_command(*args, python=(exe, flags))."""
    return _fake_command


@pytest.fixture
def make_spec(tmp_path: Path) -> SpecFactory:
    """A valid spec dict for the fake renderer; keyword arguments override keys."""

    def make(*extra: str, **overrides: Any) -> dict[str, Any]:
        scene = tmp_path / "scene.blend"
        scene.write_bytes(b"BLENDER-fake")
        spec: dict[str, Any] = {
            "version": 1,
            "job": 12,
            "task": 3,
            "command": _fake_command(*extra),
            "scene": str(scene),
            "frames": [1, 2, 3],
            "cpus": 2,
            "work_dir": str(tmp_path / "work"),
            "output_dir": str(tmp_path / "out"),
            "output_name": "shot_####",
            "progress_parser": "blender",
            "timeout": 30,
            "stall_timeout": 20,
        }
        spec.update(overrides)
        return spec

    return make


@pytest.fixture
def run_agent() -> Callable[[dict[str, Any]], Result]:
    """Run the agent in this process (fast); returns its events."""

    def go(spec: dict[str, Any], cancel: CancelFlag | None = None) -> Result:
        out = io.StringIO()
        code = run(parse_spec(spec), out, cancel)
        result = Result(code, parse_events(out.getvalue()))
        check_contract(result, spec["frames"])
        return result

    return go


def _run_cli(
    spec: dict[str, Any] | str,
    tmp_path: Path,
    *python_flags: str,
    cwd: Path = REPO,
    timeout: float = 60,
) -> Result:
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, *python_flags, "-m", "renderhub.agent", str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
    result = Result(proc.returncode, parse_events(proc.stdout), proc.stderr)
    if isinstance(spec, dict) and isinstance(spec.get("frames"), list):
        check_contract(result, spec["frames"])
    return result


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Result]:
    """Run ``python [flags] -m renderhub.agent SPEC`` in a subprocess (its own session)."""

    def go(spec: dict[str, Any] | str, *python_flags: str, cwd: Path = REPO) -> Result:
        return _run_cli(spec, tmp_path, *python_flags, cwd=cwd)

    return go
