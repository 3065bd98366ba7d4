"""A render node that holds only the broker's address renders a job end to end: it
claims over the broker, fetches the scene through links, uploads through grants, and
reports through events the manager applies."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from jobs.choices import FrameState, JobState
from renderhub import storage
from tests.jobs.conftest import submit_one
from tests.workers import wait_for

from .conftest import needs_redis

pytestmark = [pytest.mark.django_db(transaction=True), needs_redis]


def test_a_node_without_keys_renders_a_job(
    project, fake_software, cluster, scene_url, nodes, settings
) -> None:
    nodes.start("a", cluster, slots=2)
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-6", nodes=2)
    wait_for(job, timeout=90, explain=lambda: nodes.log("a")[-4000:])
    assert job.state == JobState.FINISHED, job.failure_reason
    frames = list(job.frame_set.order_by("number"))
    assert [f.state for f in frames] == [FrameState.DONE] * 6
    for frame in frames:
        backend, key = storage.resolve(frame.output_url)
        assert Path(frame.output_url).name == f"shot_a_{frame.number:04d}.png"
        assert backend.exists(key)
        assert frame.thumbnail_url.endswith(f"_thumbs/shot_a_{frame.number:04d}.jpg")
        with Image.open(backend.local_path(storage.resolve(frame.thumbnail_url)[1])) as thumb:
            assert thumb.format == "JPEG"
    for task in job.tasks.all():
        assert task.node == "a@node"
        attempt = task.history.get()
        assert attempt.log_url and "frame" in attempt.agent_log_tail
        backend, key = storage.resolve(attempt.log_url + "agent.log")
        assert backend.exists(key)
