"""``manage.py resume ID``."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import services

pytestmark = pytest.mark.django_db


def test_it_resumes_a_paused_job(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-4", nodes=2)
    assert run("resume", str(job.pk)).out == f"Job #{job.pk} is not paused.\n"
    services.pause_job(job)
    assert run("resume", str(job.pk), "--as-user", "bob").out == (
        f"Resumed job #{job.pk}: its chunks may start again.\n"
    )
    job.refresh_from_db()
    assert not job.is_paused
