"""A render node keeps a job's Blender between the job's chunks on a slot, as the
manager's own worker does (``--warm-seconds``; renderhub.node.agent_session)."""

from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from jobs.choices import JobState
from renderhub import storage
from tests.conftest import build_demo_scene
from tests.jobs.conftest import submit_one
from tests.workers import wait_for

from .conftest import needs_redis

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_redis,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


def test_a_nodes_slot_renders_a_jobs_chunks_with_one_blender(
    project, blender_software, cluster, storage_root, storage_url, nodes
) -> None:
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=3)
    nodes.start("a", cluster, slots=1, extra=["--warm-seconds", "300"])
    job = submit_one(
        project, blender_software, cluster, storage_url + "scenes/ball/ball.blend",
        frames="1-3", chunk_size=1,
    )  # fmt: skip
    wait_for(job, timeout=180, explain=lambda: nodes.log("a")[-4000:])

    assert job.state == JobState.FINISHED, job.failure_reason
    pixels = set()
    for frame in job.frame_set.all():
        backend, key = storage.resolve(frame.output_url)
        with Image.open(backend.local_path(key)) as image:
            pixels.add(image.convert("RGB").tobytes())
    assert len(pixels) == 3
    pids = []
    for task in job.tasks.order_by("index"):
        backend, key = storage.resolve(task.history.get().log_url + "agent.log")
        pids.append(int(re.search(r" started pid=(\d+) ", backend.read(key).decode())[1]))
    assert len(set(pids)) == 1, f"one Blender for the job's three chunks: {pids}"

    # Its first chunk compiled Blender's Python for the node's next starts, in the
    # background; the node's reports say so (its page, System status).
    def reported() -> str:
        return cluster.nodes.get(name="a@node").compiled_python

    wait_for(
        lambda: re.search(r"blender: ready \([\d,]+ modules\)", reported()),
        timeout=300,  # the build waits for a spare core
        what="the node reports Blender's Python compiled",
        explain=reported,
    )
    # The last chunk's claim said nothing more was queued: its Blender is not kept for
    # the timer's 300 s, the session and its folders go at once.
    work = nodes.log_dir / "a"
    wait_for(
        lambda: not list(work.glob("job-*/session-*")),
        timeout=20,
        what="the node closes the job's session after its last chunk",
    )
