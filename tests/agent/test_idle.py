"""The agent program checks frames at idle priority once its renderer started; the renderer
keeps the priority it was started with, so the checks take no core from the render."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from renderhub.agent import idle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux priorities")

TELL_NICE = (
    "import os, sys; sys.stderr.write('renderer nice %d\\n' % os.getpriority(os.PRIO_PROCESS, 0))"
)


def test_the_agent_lowers_itself_after_starting_the_renderer(
    run_cli, make_spec, tmp_path: Path
) -> None:
    spec = make_spec(command=[sys.executable, "-c", TELL_NICE], frames=[1])
    result = run_cli(spec)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    stderr = (tmp_path / "work" / "stderr.log").read_text()
    assert f"renderer nice {ours}" in stderr  # not lowered: it renders at full speed
    messages = [e["message"] for e in result.of("log")]
    assert any(m.startswith(f"checking frames at nice {idle.NICE}") for m in messages), messages


def test_an_agent_run_in_process_leaves_its_callers_thread_alone(run_agent, make_spec) -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    run_agent(make_spec(frames=[1]))
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
