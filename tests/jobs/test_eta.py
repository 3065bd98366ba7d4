"""The ETA of a running job: measured speed, the slots that may run it, what is left.

The steady-progress test replays a render that goes exactly to plan (10 s a frame, chunks
of 3 frames taken by the free slots in turn) and reads the ETA every 2.5 s: it must count
down with the clock, never grow, and land on the real end.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import timing
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, NodeBlock, RenderJob, Task
from tests.web.conftest import submit

pytestmark = pytest.mark.django_db

SPF = 10.0  # seconds per frame
CHUNK = 3  # frames per chunk
FRAMES = 24  # so 8 chunks


@pytest.fixture
def job(project: Any, fake_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    return submit(project, fake_software, cluster, scene_url, frames=f"1-{FRAMES}", chunk_size=3)


def earlier_job(job: RenderJob, frames: int = 5, seconds: float = 50.0, **kw: Any) -> RenderJob:
    """A finished job of the same scene and software: the new job's speed before its own."""
    fields = {
        "project": job.project,
        "software": job.software,
        "cluster": job.cluster,
        "name": "earlier",
        "scene_url": job.scene_url,
        "frame_spec": f"1-{frames}",
        "frame_count": frames,
        "node_count": 1,
        "output_url": job.output_url,
        "state": JobState.FINISHED,
        "frames_done": frames,
        "render_seconds": seconds,
    }
    return RenderJob.objects.create(**{**fields, **kw})


def nodes(cluster: Any, count: int, now: datetime, concurrency: int = 1) -> list[ClusterNode]:
    return [
        ClusterNode.objects.update_or_create(
            cluster=cluster,
            name=f"render@node-{i}",
            defaults={"last_seen": now, "concurrency": concurrency, "state": "idle"},
        )[0]
        for i in range(count)
    ]


def replay(job: RenderJob, slots: int, t0: datetime, t: float) -> float:
    """Put the job in the state a to-plan render is in at ``t`` seconds; returns the real
    time left. Chunk k runs on slot k % slots from (k // slots) chunk-lengths on."""
    chunk_seconds = CHUNK * SPF
    done_frames = 0
    for task in job.tasks.order_by("index"):
        start = (task.index // slots) * chunk_seconds
        if t < start:
            Task.objects.filter(pk=task.pk).update(state=TaskState.QUEUED, node="")
            task.frame_set.update(state=FrameState.QUEUED, started_at=None, seconds=None)
            continue
        running = t < start + chunk_seconds
        Task.objects.filter(pk=task.pk).update(
            state=TaskState.RUNNING if running else TaskState.DONE,
            node=f"render@node-{task.index % slots}",
            started_at=t0 + timedelta(seconds=start),
        )
        for i, number in enumerate(task.frames):
            begins = start + i * SPF
            if t >= begins + SPF:
                state, done_frames = FrameState.DONE, done_frames + 1
            elif t >= begins:
                state = FrameState.RUNNING
            else:
                state = FrameState.QUEUED
            Frame.objects.filter(job=job, number=number).update(
                state=state,
                started_at=t0 + timedelta(seconds=begins) if state != FrameState.QUEUED else None,
                seconds=SPF if state == FrameState.DONE else None,
            )
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        started_at=t0,
        frames_done=done_frames,
        render_seconds=done_frames * SPF,
    )
    job.refresh_from_db()
    chunks = -(-FRAMES // CHUNK)
    return -(-chunks // slots) * chunk_seconds - t


@pytest.mark.parametrize("slots", [1, 3, 4])
def test_at_a_steady_speed_the_eta_counts_down_and_never_grows(
    job: RenderJob, cluster: Any, slots: int
) -> None:
    earlier_job(job)  # 10 s a frame on this scene before: an ETA from the first second
    t0 = timezone.now() - timedelta(hours=1)
    seen: list[float] = []
    t = 0.0
    while True:
        left = replay(job, slots, t0, t)
        if left <= 0:
            break
        nodes(cluster, slots, t0 + timedelta(seconds=t))
        found = timing.eta(job, now=t0 + timedelta(seconds=t))
        assert found is not None and found.seconds is not None, t
        assert found.slots == slots
        assert found.seconds == pytest.approx(left, abs=1.0), t  # the real time left
        seen.append(found.seconds)
        t += 2.5
    assert len(seen) > 10
    for before, after in itertools.pairwise(seen):
        assert after <= before + 0.01  # never grows
        assert before - after == pytest.approx(2.5, abs=1.0)  # down with the clock


def test_the_speed_comes_from_this_jobs_frames_once_it_has_some(
    job: RenderJob, cluster: Any
) -> None:
    earlier_job(job, frames=5, seconds=500.0)  # 100 s a frame before
    t0 = timezone.now() - timedelta(hours=1)
    replay(job, 4, t0, 45.0)  # 10 s a frame now: chunks 0-3 done, 4-7 are 1.5 frames in
    nodes(cluster, 4, t0 + timedelta(seconds=45))
    found = timing.eta(job, now=t0 + timedelta(seconds=45))
    assert found and found.speed and found.speed.basis == "job"
    assert found.speed.seconds_per_frame == pytest.approx(10.0)
    assert "from 16 frames of this job" in found.label
    assert found.seconds == pytest.approx(60 - 45, abs=1.0)


def test_four_slots_finish_four_times_sooner_than_one(job: RenderJob, cluster: Any) -> None:
    earlier_job(job)
    now = timezone.now()
    four = nodes(cluster, 4, now)
    # 8 waiting chunks of 30 s: 2 rounds on 4 slots, 8 on 1.
    assert timing.eta(job, now).seconds == pytest.approx(60.0)  # type: ignore[union-attr]
    ClusterNode.objects.filter(pk__in=[n.pk for n in four[1:]]).delete()
    one = timing.eta(job, now)
    assert one is not None and one.slots == 1 and one.seconds == pytest.approx(240.0)
    assert one.label.startswith("1 slot, 10.00 s per frame from 5 frames of this scene")


def test_only_online_unblocked_nodes_count_and_each_of_their_slots(
    job: RenderJob, cluster: Any
) -> None:
    earlier_job(job)
    now = timezone.now()
    a, _, c, d = nodes(cluster, 4, now)
    ClusterNode.objects.filter(pk=d.pk).update(last_seen=now - timedelta(hours=1))  # offline
    NodeBlock.objects.create(job=job, node=c.name, failures=5)  # blocklisted for this job
    found = timing.eta(job, now)
    assert found is not None and found.slots == 2
    assert found.seconds == pytest.approx(120.0)  # 8 chunks over 2 slots
    ClusterNode.objects.filter(pk=a.pk).update(concurrency=6)  # a worker with 6 slots
    assert timing.eta(job, now).slots == 7  # type: ignore[union-attr]


def test_cloud_chunks_name_their_node_by_ip(job: RenderJob, cluster: Any) -> None:
    earlier_job(job)
    now = timezone.now()
    ClusterNode.objects.create(
        cluster=cluster, name="i-abc123", ip_address="10.0.0.7", last_seen=now
    )
    assert timing.eta(job, now).slots == 1  # type: ignore[union-attr]
    NodeBlock.objects.create(job=job, node="10.0.0.7", failures=5)
    assert timing.eta(job, now).why_none == "no node online may take it"  # type: ignore[union-attr]


def test_no_measurement_means_no_estimate_not_a_guess(
    job: RenderJob, cluster: Any, fake_software: Any
) -> None:
    now = timezone.now()
    nodes(cluster, 2, now)
    found = timing.eta(job, now)
    assert found is not None and found.seconds is None and found.why_none == "no estimate yet"
    # Another scene with the same software: the software's speed, said so.
    earlier_job(job, scene_url=job.scene_url + ".other", frames=4, seconds=80.0)
    found = timing.eta(job, now)
    assert found and found.speed and found.speed.basis == "software"
    assert found.speed.seconds_per_frame == pytest.approx(20.0)
    assert "from this software's earlier jobs" in found.label
    # Its own scene's history wins over the software's.
    earlier_job(job, frames=2, seconds=6.0)
    assert timing.eta(job, now).speed.seconds_per_frame == pytest.approx(3.0)  # type: ignore[union-attr]


def test_another_projects_history_is_not_used(
    job: RenderJob, cluster: Any, image: Any, storage_url: str
) -> None:
    from projects.models import Project

    other = Project.objects.create(name="other", image=image, output_prefix=storage_url + "o/")
    earlier_job(job, project=other)
    nodes(cluster, 1, timezone.now())
    assert timing.eta(job).seconds is None  # type: ignore[union-attr]


def test_ended_jobs_have_no_eta(job: RenderJob) -> None:
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FINISHED)
    job.refresh_from_db()
    assert timing.eta(job) is None


def test_the_pages_the_cli_and_the_api_show_it(
    job: RenderJob, cluster: Any, client: Any, bob: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    earlier_job(job)
    nodes(cluster, 4, timezone.now())
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    client.force_login(bob)
    as_bob = client
    text = as_bob.get(f"/jobs/{job.pk}/").content.decode()
    assert "1:00" in text and "4 slots, 10.00 s per frame from 5 frames of this scene" in text
    dashboard = as_bob.get("/").content.decode()
    assert "1:00" in dashboard and "ETA" in dashboard
    out = StringIO()
    call_command("job", str(job.pk), "--as-user", "bob", stdout=out)
    assert "eta:" in out.getvalue() and "4 slots" in out.getvalue()
    api = as_bob.get(f"/api/jobs/{job.pk}/").json()
    assert api["eta_seconds"] == pytest.approx(60.0, abs=1.0)
    # The same ETA as an instant: a client holding a 304 counts down to it.
    ends = datetime.fromisoformat(api["eta_at"].replace("Z", "+00:00")).timestamp()
    assert ends == pytest.approx(time.time() + 60.0, abs=2.0)
    listed = as_bob.get("/api/jobs/").json()
    etas = {row["id"]: row["eta_seconds"] for row in listed.get("results", listed)}
    assert etas[job.pk] == pytest.approx(60.0, abs=1.0) and len(etas) == 2
    assert None in etas.values()  # the finished one
