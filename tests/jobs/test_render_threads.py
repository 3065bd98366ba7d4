"""How many threads a chunk's renderer gets: every core of the node unless
``RENDER_THREADS`` says otherwise, whatever the worker's concurrency (the slots' renderers
share the cores, and the last chunk of a job running takes the cores the others left)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import runner
from tests.jobs.conftest import submit_one

pytestmark = [pytest.mark.django_db]


def test_a_chunk_renders_on_every_core_unless_render_threads_says(
    project, fake_software, cluster, scene_url, settings: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    settings.RENDER_THREADS = 0
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    task, attempt = runner.claim(job.tasks.get(index=0).pk, "node-1")
    run = runner.ChunkRun(task, "node-1", runner.cpus_for_chunk(), attempt)
    try:
        assert run.build_spec()["cpus"] == 8
    finally:
        run.cleanup()
    settings.RENDER_THREADS = 3
    assert runner.cpus_for_chunk() == 3
