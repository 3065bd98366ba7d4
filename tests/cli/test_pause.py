"""``manage.py pause ID [--now]``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.choices import TaskState

from .conftest import start_task

pytestmark = pytest.mark.django_db


def test_it_pauses_and_with_now_stops_running_chunks(run: Any, submit: Any, scene_url) -> None:
    job = submit(scene_url, "1-4", nodes=2)
    assert run("pause", str(job.pk)).out == (
        f"Paused job #{job.pk}: no new chunk starts; running chunks finish.\n"
    )
    start_task(job.tasks.get(index=0))
    assert run("pause", f"#{job.pk}", "--now").out == (
        f"Paused job #{job.pk}: 1 running chunk stopped and queued again.\n"
    )
    assert job.tasks.get(index=0).state == TaskState.QUEUED
    assert run("pause", str(job.pk)).out == f"Job #{job.pk} is paused already.\n"


def test_it_hides_other_projects_jobs(run: Any, submit: Any, scene_url: str, charlie) -> None:
    job = submit(scene_url)
    with pytest.raises(CommandError, match=rf"^There is no job #{job.pk}\.$"):
        run("pause", str(job.pk), "--as-user", "charlie")


def test_the_job_list_marks_paused_and_waiting_jobs(run: Any, submit: Any, scene_url) -> None:
    paused = submit(scene_url, "1-2")
    run("pause", str(paused.pk))
    waiting = submit(scene_url, "1-2", after=[paused.pk])
    rows = {line.split()[0]: line for line in run("jobs").out.splitlines()[1:]}
    assert "queued (paused)" in rows[str(paused.pk)]
    assert "queued (waiting)" in rows[str(waiting.pk)]
