"""End to end with a real render worker and real Blender: a scene name Blender cannot find
fails the chunk and the job with Blender's own line, where it used to render the default
scene and report success.

The submit check refuses a ``-S`` parameter naming no scene of the file, so the name is
fixed in the software's command here, as a hand-made template could have it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from images.models import Software
from jobs import services
from jobs.choices import FrameState, JobState
from tests.conftest import build_demo_scene
from tests.workers import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


def test_blenders_cant_find_scene_line_fails_the_job(
    project: Any, cluster: Any, storage_root: Path, storage_url: str, render_worker: Any, settings
) -> None:
    software = Software.objects.create(
        image=project.image,
        name="blender-shot01",
        scene_suffixes=".blend",
        command_template=[
            *["blender", "-b", "{scene}", "--disable-autoexec", "-S", "Shot01"],
            *["-o", "{output_pattern}", "-F", "PNG", "-t", "{cpus}", "-f", "{frame_list}"],
        ],
    )
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=2)
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=[storage_url + "scenes/ball/ball.blend"],
            frames="1",
        )
    )

    job = wait_for(job, timeout=180)

    assert job.state == JobState.FAILED
    task = job.tasks.get()
    assert task.failure_reason.startswith("Can't find scene: 'Shot01' in file: '"), (
        task.failure_reason
    )
    assert task.failure_reason.endswith("ball.blend'")
    assert "Can't find scene: 'Shot01'" in job.failure_reason
    assert job.frame_set.get().state == FrameState.FAILED
    # The same line would come back on every attempt and every node: not retried.
    assert (task.attempts, task.max_attempts) == (1, 3)
