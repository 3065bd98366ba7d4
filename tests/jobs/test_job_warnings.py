"""What the checks at submit warned about stays with the job: its page, `manage.py job` and
the API show it after the submit page is gone."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from jobs import services

pytestmark = pytest.mark.django_db

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


def test_submit_warnings_are_kept_and_shown(
    client: Any,
    settings: Any,
    bob: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    scene_url: str,
) -> None:
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}
    # The stand-in scene is no .blend file: its facts cannot be read, which is a warning.
    jobs = services.submit_render(
        services.RenderRequest(
            project=project,
            software=blender_software,
            cluster=cluster,
            scenes=[scene_url],
            frames="1-2",
        ),
        bob,
    )
    [job] = jobs
    job.refresh_from_db()
    assert job.warnings == jobs.warnings and len(job.warnings) == 1
    warning = job.warnings[0]
    assert "not checked" in warning

    client.force_login(bob)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Warned at submit" in page
    out = io.StringIO()
    call_command("job", str(job.pk), stdout=out)
    assert f"warning: {warning}" in " ".join(out.getvalue().split())
    api = client.get(f"/api/jobs/{job.pk}/").json()
    assert api["warnings"] == [warning]
