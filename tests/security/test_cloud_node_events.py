"""A BatchCompute node's events are input, not truth (issue 11, outputs are files).

On the VM the renderer runs unconfined next to the agent, and the events folder is a
writable OSS mount, so whatever a scene makes the renderer do can append lines to any
instance's events file. Through the real batchcompute SDK and oss2 against the fakes.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobs.backends.batchcompute import poll as cloud_poll
from jobs.choices import FrameState
from jobs.models import CloudJob
from tests.compute.fixtures import submit_cloud, write_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def submit(
    cloud_project: Any, cloud_software: Any, cloud_cluster: Any, fake_bc: Any, capture: Any
) -> Any:
    def go() -> tuple[Any, CloudJob]:
        job = submit_cloud(cloud_project, cloud_software, cloud_cluster, capture=capture)
        cloud_job = CloudJob.objects.get(job=job)
        fake_bc.start_instances(cloud_job.cloud_id)
        return job, cloud_job

    return go


@pytest.fixture
def capture(django_capture_on_commit_callbacks: Any) -> Any:
    return django_capture_on_commit_callbacks


def test_a_malformed_event_line_does_not_stop_other_jobs_polling(
    submit: Any, cloud_oss: Any, fake_bc: Any
) -> None:
    victim, victim_cj = submit()
    _attacker, attacker_cj = submit()
    cloud_poll.poll_all()
    write_events(
        cloud_oss,
        attacker_cj,
        0,
        [{"event": "frame_started"}, {"event": "frame_done", "frame": "1; drop"}],
    )
    write_events(
        cloud_oss,
        victim_cj,
        0,
        [
            {"event": "frame_started", "frame": 1},
            {"event": "frame_done", "frame": 1, "outputs": ["shot_a_0001.png"], "seconds": 1.5},
        ],
    )
    fake_bc.finish_instance(victim_cj.cloud_id, 0)  # a frame is done once its file is stored
    report = cloud_poll.poll_all()
    assert report.failed == 0
    frame = victim.frame_set.get(number=1)
    assert frame.state == FrameState.DONE and frame.seconds == 1.5


def test_an_instance_cannot_finish_other_chunks_frames(
    submit: Any, cloud_oss: Any, fake_bc: Any
) -> None:
    """Instance 0 renders frames 1-2: its claims about 3-6 (and absurd times) are ignored."""
    job, cloud_job = submit()
    cloud_poll.poll_all()
    forged = [
        {"event": "frame_done", "frame": n, "outputs": [f"shot_a_{n:04d}.png"], "seconds": 1e300}
        for n in range(1, 7)
    ]
    write_events(cloud_oss, cloud_job, 0, forged)
    fake_bc.finish_instance(cloud_job.cloud_id, 0)
    cloud_poll.poll_all()
    job.refresh_from_db()
    done = sorted(job.frame_set.filter(state=FrameState.DONE).values_list("number", flat=True))
    assert done == [1, 2]
    assert job.frames_done == 2
    assert job.render_seconds == 0.0  # 1e300 is not a render time


def test_output_names_from_events_stay_in_the_jobs_folder(
    submit: Any, cloud_oss: Any, fake_bc: Any
) -> None:
    job, cloud_job = submit()
    cloud_poll.poll_all()
    events = [
        {"event": "frame_done", "frame": 1, "outputs": ["../../other/output/secret.png"]},
        {"event": "frame_done", "frame": 2, "outputs": ["/x/shot_a_0002.png"]},
    ]
    write_events(cloud_oss, cloud_job, 0, events)
    fake_bc.finish_instance(cloud_job.cloud_id, 0)
    cloud_poll.poll_all()
    one, two = job.frame_set.get(number=1), job.frame_set.get(number=2)
    assert one.output_url == ""  # ".." is not a frame name: no link, and no frame file
    assert one.state == FrameState.FAILED
    assert two.output_url == job.output_url + "shot_a_0002.png"  # the name only
