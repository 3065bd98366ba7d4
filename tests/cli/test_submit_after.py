"""``manage.py submit_render --after ID`` and ``manage.py cancel --cascade``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.choices import JobState
from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


def test_it_submits_a_job_after_others_and_cancels_with_them(
    run: Any, submit: Any, scene_url: str
) -> None:
    first, second = submit(scene_url, "1-4"), submit(scene_url, "1-4")
    args = ["submit_render", "--project", "shots", "--scene", scene_url, "--frames", "1-2"]
    run(*args, "--after", str(first.pk), "--after", f"#{second.pk}")
    job = RenderJob.objects.latest("pk")
    assert job.is_waiting and set(job.after.all()) == {first, second}

    out = run("cancel", str(first.pk), "--cascade").out
    assert out == (
        f"Cancelled job #{first.pk} (2 chunks stopped). "
        f"Also cancelled the jobs waiting for it: #{job.pk}.\n"
    )
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    second.refresh_from_db()
    assert second.state == JobState.QUEUED


def test_it_refuses_an_unknown_job_to_run_after(run: Any, scene_url: str, project: Any) -> None:
    args = ["submit_render", "--project", "shots", "--scene", scene_url, "--frames", "1-2"]
    with pytest.raises(CommandError, match="There is no job #31337"):
        run(*args, "--after", "31337")
    with pytest.raises(CommandError, match="is not a job id"):
        run(*args, "--after", "x")
    assert not RenderJob.objects.exists()


def test_job_shows_what_it_waits_for_its_pause_and_its_movie(
    run: Any, submit: Any, scene_url: str, image: Any
) -> None:
    import importlib

    from django.apps import apps

    from jobs import services

    importlib.import_module("images.migrations.0005_ffmpeg").create(apps, None)
    first = submit(scene_url, "1-4")
    after = submit(scene_url, "1-2", after=[first.pk], movie=True)
    services.pause_job(after)
    out = run("job", str(after.pk)).out
    assert "state:     queued (paused)\n" in out
    assert f"waits for: #{first.pk} (queued)\n" in out
    assert f"movie:     job #{after.movies.get().pk} (queued)\n" in out
