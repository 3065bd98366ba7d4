"""jobs/tasks.py: settings are read when a task runs, and beat names registered tasks."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs import tasks


def test_render_chunk_time_limits_follow_render_timeout_when_read(settings: Any) -> None:
    settings.RENDER_TIMEOUT = 100
    assert tasks.render_chunk.soft_time_limit == 400
    assert tasks.render_chunk.time_limit == 700
    settings.RENDER_TIMEOUT = 3600
    assert tasks.render_chunk.soft_time_limit == 3900
    assert tasks.render_chunk.time_limit == 4200


def test_the_cloud_job_tasks_are_registered_under_the_names_beat_uses() -> None:
    from renderhub.celery import app

    app.loader.import_default_modules()
    assert settings.CELERY_BEAT_SCHEDULE["poll-batchcompute-jobs"]["task"] == (
        "jobs.tasks.poll_cloud_jobs"
    )
    assert {"jobs.tasks.poll_cloud_jobs", "jobs.tasks.finish_cloud_job"} <= set(app.tasks)
