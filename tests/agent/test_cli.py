"""``python -m renderhub.agent`` as a process: the CLI, signals, stdlib-only."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Result, SpecFactory, parse_events

AGENT_DIR = REPO / "renderhub" / "agent"
RunCli = Callable[..., Result]


def test_cli_success(make_spec: SpecFactory, run_cli: RunCli) -> None:
    result = run_cli(make_spec())
    assert result.exit_code == 0, result.stderr
    assert result.finished["status"] == "success"
    assert result.frames("frame_done") == [1, 2, 3]


def test_cli_reads_stdin(make_spec: SpecFactory) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "renderhub.agent", "-"],
        input=json.dumps(make_spec(frames=[2])),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert parse_events(proc.stdout)[-1]["status"] == "success"


def test_cli_bad_spec(make_spec: SpecFactory, run_cli: RunCli) -> None:
    result = run_cli(make_spec(cpus=0, frames="1-3"))
    assert result.exit_code == 2
    assert result.finished == {
        **result.finished,
        "status": "bad_spec",
        "exit_code": 2,
        "renderer_exit_code": None,
    }
    messages = [e["message"] for e in result.of("log")]
    assert len(messages) == 2
    assert all(m.startswith("bad spec: ") for m in messages)
    assert "cpus must be an integer >= 1" in result.finished["reason"]
    assert "bad spec: frames must be a non-empty list" in result.stderr


def test_cli_not_json(run_cli: RunCli) -> None:
    result = run_cli("{oops")
    assert result.exit_code == 2
    assert "the spec is not valid JSON" in result.finished["reason"]


def test_cli_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "renderhub.agent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "expected exactly one argument" in parse_events(proc.stdout)[-1]["reason"]


# --- standard library only ----------------------------------------------------------------


def _optional_imports(tree: ast.AST) -> set[ast.AST]:
    """Imports inside ``try: ... except ImportError``: used when there, not needed."""
    optional: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers
        ):
            for statement in node.body:
                optional.update(ast.walk(statement))
    return optional


def test_agent_imports_only_the_standard_library() -> None:
    for path in AGENT_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        optional = _optional_imports(tree)
        for node in ast.walk(tree):
            if node in optional:
                continue
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names or root == "__future__", (path, root)


def test_runs_without_site_packages(
    make_spec: SpecFactory, run_cli: RunCli, fake_command, tmp_path: Path
) -> None:
    """A bare copy of the agent package runs under ``python -S`` (no site-packages)."""
    root = tmp_path / "standalone"
    shutil.copytree(
        AGENT_DIR, root / "renderhub" / "agent", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "renderhub" / "__init__.py").write_text("")
    spec = make_spec(command=fake_command(python=(sys.executable, "-S")))
    result = run_cli(spec, "-S", "-E", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert result.frames("frame_done") == [1, 2, 3]


# --- signals ------------------------------------------------------------------------------


def start_agent(spec: dict[str, Any], tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "renderhub.agent", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # as the caller does: the agent leads its own group
    )


class Events:
    """Collects a running agent's events in a thread (readline blocks)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.records: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.append(json.loads(line))

    def wait_for(self, event: str, frame: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r["event"] == event and r.get("frame") == frame for r in self.records):
                return
            time.sleep(0.02)
        pytest.fail(f"no {event} for frame {frame} within {timeout} s: {self.records}")

    def finished(self, timeout: float = 15) -> dict[str, Any]:
        self.proc.wait(timeout)
        self.thread.join(timeout)
        assert self.records[-1]["event"] == "finished"
        return self.records[-1]


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
def agent_procs() -> Any:
    """Agents started by a test; any still running at teardown get their group killed."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("whom", ["group", "agent"])
def test_sigterm_cancels_and_kills_renderer(
    make_spec: SpecFactory, tmp_path: Path, agent_procs: list[Any], whom: str
) -> None:
    pidfile = tmp_path / "renderer.pid"
    # Sent to the agent alone, the renderer ignores SIGTERM: the agent must SIGKILL it.
    extra = ["--ignore-term"] if whom == "agent" else []
    spec = make_spec("--hang", "2", "--chatty", "--pidfile", str(pidfile), *extra, kill_grace=0.5)
    proc = start_agent(spec, tmp_path)
    agent_procs.append(proc)
    events = Events(proc)
    events.wait_for("frame_started", 2)
    renderer_pid = int(pidfile.read_text())
    if whom == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    finished = events.finished()
    assert proc.returncode == 5
    assert finished["status"] == "cancelled"
    assert finished["reason"] == "cancelled by SIGTERM"
    assert finished["renderer_exit_code"] == (-15 if whom == "group" else -9)
    assert_gone(renderer_pid)


def test_sigint_cancels(make_spec: SpecFactory, tmp_path: Path, agent_procs: list[Any]) -> None:
    pidfile = tmp_path / "renderer.pid"
    proc = start_agent(make_spec("--hang", "1", "--chatty", "--pidfile", str(pidfile)), tmp_path)
    agent_procs.append(proc)
    events = Events(proc)
    events.wait_for("frame_started", 1)
    os.kill(proc.pid, signal.SIGINT)
    assert events.finished()["reason"] == "cancelled by SIGINT"
    assert proc.returncode == 5
    assert_gone(int(pidfile.read_text()))
