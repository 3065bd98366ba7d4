"""A Blender kept between chunks (RENDER_WARM_SECONDS) serves one job only: the next
chunk on the same slot from another project's job, though it renders the very same scene
file with the same options, gets a Blender of its own, never the one that held the first
project's scene, options and scratch folder."""

from __future__ import annotations

import re
import shutil

import pytest

from jobs.choices import JobState
from renderhub import storage
from tests.conftest import build_demo_scene, make_project
from tests.jobs.conftest import submit_one as submit
from tests.workers import render_worker_for, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.embedded,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


def renderer_pids(job) -> set[int]:
    backend, _ = storage.resolve(job.output_url)
    pids = set()
    for task in job.tasks.all():
        _, logs = storage.resolve(task.log_url)
        agent_log = backend.read(logs + "agent.log").decode()
        pids.add(int(re.search(r" started pid=(\d+) ", agent_log)[1]))
    return pids


def test_two_projects_jobs_on_one_slot_never_share_a_renderer(
    project, image, blender_software, cluster, storage_root, storage_url, charlie, settings
) -> None:
    settings.RENDER_WARM_SECONDS = 30
    rival = make_project("adverts", image, storage_url, "output-adverts/", charlie)
    build_demo_scene(storage_root / "scenes" / "ball.blend", frames=3)
    scene = storage_url + "scenes/ball.blend"
    with render_worker_for(cluster, settings, concurrency=1):
        jobs = [
            submit(owner, blender_software, cluster, scene, frames="1-3", chunk_size=1)
            for owner in (project, rival)
        ]
        jobs = [wait_for(job, timeout=180) for job in jobs]

    assert [job.state for job in jobs] == [JobState.FINISHED, JobState.FINISHED]
    ours, theirs = (renderer_pids(job) for job in jobs)
    assert ours and theirs and not ours & theirs, (ours, theirs)
