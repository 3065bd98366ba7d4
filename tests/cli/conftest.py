"""Fixtures for the manage.py command tests, on top of tests/conftest.py's shared ones.

The shared personas: alice is a superuser, bob a member of ``project`` (``shots``),
charlie a member of nothing. Here dave is the member of ``other_project`` (``ads``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from clusters.models import Cluster
from images.models import ComputeImage, Software
from jobs import services
from jobs.choices import TaskState
from jobs.models import RenderJob, Task
from projects.models import Project, StorageMapping


@dataclass
class Result:
    out: str
    err: str


@pytest.fixture
def run() -> Callable[..., Result]:
    """call_command with captured stdout and stderr."""

    def run(*args: Any, **options: Any) -> Result:
        out, err = StringIO(), StringIO()
        call_command(*args, stdout=out, stderr=err, **options)
        return Result(out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def project(project: Project, cluster: Cluster, blender_software: Software) -> Project:
    """The shared project, with one active cluster on its image (so submissions default)."""
    return project


@pytest.fixture
def scene_url(scene_url: str, project: Project) -> str:
    """The shared stand-in .blend in ``project``'s mapping; asking for it sets up the project."""
    return scene_url


@pytest.fixture
def other_project(image: ComputeImage, storage_url: str, django_user_model: Any) -> Project:
    project = Project.objects.create(name="ads", image=image, output_prefix=storage_url + "ads/")
    StorageMapping.objects.create(
        project=project, source=storage_url + "ads-scenes/", destination="/mnt/ads/"
    )
    project.members.add(django_user_model.objects.create_user("dave", password="pw-dave-1"))
    return project


@pytest.fixture
def submit(
    project: Project, blender_software: Software, cluster: Cluster
) -> Callable[..., RenderJob]:
    """Create a job through the services, as the CLI and the web do."""

    def submit(scene: str, frames: str = "1-48", **fields: Any) -> RenderJob:
        fields.setdefault("nodes", 2)
        request = services.RenderRequest(
            project=fields.pop("project", project),
            software=blender_software,
            cluster=cluster,
            scenes=[scene],
            frames=frames,
            **fields,
        )
        return services.submit_render(request)[0]

    return submit


@pytest.fixture
def ads_job(submit: Any, other_project: Project, storage_root: Path) -> RenderJob:
    scene = storage_root / "ads-scenes" / "spot.blend"
    scene.parent.mkdir(parents=True)
    scene.write_bytes(b"spot")
    return submit(other_project.mappings.get().source + "spot.blend", "1-10", project=other_project)


def start_task(task: Task, node: str = "node-1") -> Task:
    """What a worker's claim does: running, one more attempt, on a node."""
    now = timezone.now()
    Task.objects.filter(pk=task.pk).update(
        state=TaskState.RUNNING,
        attempts=F("attempts") + 1,
        node=node,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
    )
    task.refresh_from_db()
    services.task_started(task)
    return task


def render_task(
    task: Task, *, ok: bool = True, frames: list[int] | None = None, reason: str = ""
) -> Task:
    """Run a chunk to its end through the services: ``frames`` (default all) get done."""
    task = start_task(task)
    for number in task.frames if frames is None else frames:
        services.frame_done(task, number, seconds=2.0, output_url="", thumbnail_url="")
    services.task_finished(task, ok=ok, reason=reason, exit_code=0 if ok else 1, retryable=False)
    task.refresh_from_db()
    return task
