from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.models import RenderJob

from .conftest import render_task, start_task

pytestmark = pytest.mark.django_db


def test_it_shows_the_job_its_tasks_and_failed_frames(
    run: Any, submit: Any, scene_url: str
) -> None:
    job = submit(scene_url, "1-48", nodes=3)
    render_task(job.tasks.get(index=0))
    render_task(job.tasks.get(index=1), ok=False, frames=[17, 18], reason="GPU out of memory\nat")
    start_task(job.tasks.get(index=2), node="node-7")

    out = run("job", str(job.pk)).out

    assert f"job:      #{job.pk} shot_a\n" in out
    assert "project:  shots\n" in out
    assert f"scene:    {scene_url}\n" in out
    assert "software: blender 3.4 (local-linux)\n" in out
    assert f"cluster:  {job.cluster.name}\n" in out
    assert "state:    running\n" in out
    assert "frames:   1-48: 18 done, 14 failed, 48 total\n" in out
    assert f"output:   {job.output_url}\n" in out
    assert "failure:" not in out
    table = [line.split() for line in out.split("\n\n")[1].splitlines()]
    assert table[0] == [
        "TASK", "FRAMES", "STATE", "ATTEMPTS", "NODE", "STARTED", "DURATION", "REASON"
    ]  # fmt: skip
    assert table[1][:5] == ["0", "1-16", "done", "1/3", "node-1"]
    assert table[2][:5] == ["1", "17-32", "failed", "1/3", "node-1"]
    assert table[2][-4:] == ["GPU", "out", "of", "memory"]
    assert table[3][:5] == ["2", "33-48", "running", "1/3", "node-7"]
    assert out.endswith("Failed frames:\n  19-32: GPU out of memory\n")


def test_it_accepts_a_hash_id_and_shows_the_failure(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-4", nodes=1, test_frame_first=True)
    render_task(job.tasks.get(index=0), ok=False, frames=[], reason="Missing texture")

    out = run("job", f"#{job.pk}").out

    assert "state:    failed\n" in out
    assert "failure:  The test frame failed: Missing texture\n" in out
    assert "0 (test)" in out
    assert "Failed frames:\n  1: Missing texture\n" in out
    assert out.count("cancelled") == 1  # the held chunk


def test_it_says_when_the_job_does_not_exist(run: Any, db: None) -> None:
    with pytest.raises(CommandError, match=r"^There is no job #404\.$"):
        run("job", "404")
    with pytest.raises(CommandError, match="'x1' is not a job id like 12 or #12"):
        run("job", "x1")


def test_it_hides_another_projects_job_like_a_missing_one(
    run: Any, submit: Any, scene_url: str, alice: Any, bob: Any, charlie: Any
) -> None:
    job: RenderJob = submit(scene_url)

    assert f"#{job.pk} shot_a" in run("job", str(job.pk), "--as-user", "bob").out
    assert f"#{job.pk} shot_a" in run("job", str(job.pk), "--as-user", "alice").out  # superuser
    with pytest.raises(CommandError, match=rf"^There is no job #{job.pk}\.$"):
        run("job", str(job.pk), "--as-user", "charlie")
