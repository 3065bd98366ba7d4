"""The manager decides which chunk a free slot gets (jobs.dispatch): the highest priority
first, projects taking turns at equal priority, never more messages than free slots. The
rules through the services, then with a real one-slot worker on the configured broker."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import runner, services
from jobs.choices import JobState, TaskState
from jobs.models import RenderJob, Task
from tests.conftest import make_project
from tests.jobs.conftest import submit_one as submit
from tests.workers import online_node, render_worker_for, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


@pytest.fixture
def other_project(image: Any, storage_url: str, bob: Any) -> Any:
    return make_project("adverts", image, storage_url, "output-adverts/", bob)


def sent(cluster: Any) -> list[tuple[int, int]]:
    """The (job, chunk index) of every chunk sent and not yet taken."""
    queued = Task.objects.filter(job__cluster=cluster, state=TaskState.QUEUED)
    return sorted(queued.filter(queued_at__isnull=False).values_list("job_id", "index"))


def finish_sent(cluster: Any) -> tuple[int, int]:
    """Take the one sent chunk and end it well, as a node would; returns (job, index)."""
    [(job_id, index)] = sent(cluster)
    task, _ = runner.claim(Task.objects.get(job_id=job_id, index=index).pk, "node-1")
    for number in task.frames:
        services.frame_done(task, number, seconds=0.1, output_url="", thumbnail_url="")
    services.task_finished(task, ok=True, reason="", exit_code=0, retryable=False)
    return job_id, index


def test_no_message_is_sent_before_a_node_has_a_free_slot(
    project, fake_software, cluster, scene_url
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-10", chunk_size=1)
    assert sent(cluster) == []  # no node online: nothing waits in the broker
    online_node(cluster, slots=3)
    assert services.dispatch(job.pk) == 3
    assert sent(cluster) == [(job.pk, 0), (job.pk, 1), (job.pk, 2)]
    assert services.dispatch(job.pk) == 0  # every slot holds a chunk already
    online_node(cluster, "node-2", slots=1)
    assert services.dispatch(job.pk) == 1


def test_a_message_nobody_took_in_time_leaves_its_slot_to_the_next_chunk(
    project, fake_software, cluster, scene_url, settings
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    online_node(cluster, slots=1)
    job = submit(project, fake_software, cluster, scene_url, frames="1-3", chunk_size=1)
    assert sent(cluster) == [(job.pk, 0)]
    # The worker that had taken the message off the queue died: nobody claims chunk 0.
    stuck = timezone.now() - timedelta(seconds=settings.RENDER_SENT_HOLDS_SLOT + 1)
    job.tasks.filter(index=0).update(queued_at=stuck)
    assert services.dispatch(job.pk) == 1
    assert sent(cluster) == [(job.pk, 0), (job.pk, 1)]


def test_a_node_reporting_idle_gets_the_waiting_chunks(
    project, fake_software, cluster, scene_url, settings
) -> None:
    from jobs import heartbeat

    job = submit(project, fake_software, cluster, scene_url, frames="1-4", chunk_size=1)
    assert sent(cluster) == []
    heartbeat._state["concurrency"] = 2
    try:
        assert heartbeat.report("render@box", [cluster.name]) == 1
    finally:
        heartbeat._state["concurrency"] = 1
    assert sent(cluster) == [(job.pk, 0), (job.pk, 1)]


def test_a_higher_priority_job_submitted_last_gets_the_next_free_slot(
    project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster, slots=1)
    low = submit(project, fake_software, cluster, scene_url, frames="1-3", chunk_size=1)
    high = submit(
        project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1, priority=5
    )
    assert sent(cluster) == [(low.pk, 0)]  # the slot was free when the first job came
    order = [finish_sent(cluster) for _ in range(5)]
    assert order == [(low.pk, 0), (high.pk, 0), (high.pk, 1), (low.pk, 1), (low.pk, 2)]


def test_projects_at_equal_priority_take_turns(
    project, other_project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster, slots=1)
    big = submit(project, fake_software, cluster, scene_url, frames="1-4", chunk_size=1)
    later = submit(project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1)
    other = submit(other_project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1)
    jobs = [finish_sent(cluster)[0] for _ in range(8)]
    # One project's two jobs share its turns (the older first); the other project's job
    # is not starved by them.
    assert jobs == [big.pk, other.pk, big.pk, other.pk, big.pk, big.pk, later.pk, later.pk]


def test_max_nodes_and_pauses_leave_slots_to_other_jobs(
    project, other_project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster, slots=3)
    capped = submit(
        project, fake_software, cluster, scene_url, frames="1-6", chunk_size=1, max_nodes=1,
        priority=9,
    )  # fmt: skip
    paused = submit(other_project, fake_software, cluster, scene_url, frames="1-6", chunk_size=1)
    assert {job for job, _ in sent(cluster)} == {capped.pk, paused.pk}
    services.pause_job(paused)
    rest = submit(other_project, fake_software, cluster, scene_url, frames="1-6", chunk_size=1)
    # The paused job's sent messages are skipped by the node: they hold no slot, and the
    # new job (sent on commit) takes the two the capped one leaves.
    assert services.dispatch(rest.pk) == 0
    by_job = [job for job, _ in sent(cluster)]
    assert by_job.count(capped.pk) == 1 and by_job.count(rest.pk) == 2


# --- a real worker with one slot, on whichever broker the run uses ------------------------


def started_order(*jobs: RenderJob) -> list[int]:
    tasks = Task.objects.filter(job__in=jobs).order_by("started_at", "pk")
    return list(tasks.values_list("job_id", flat=True))


def test_a_one_slot_worker_renders_the_urgent_job_next_and_alternates_projects(
    project, other_project, fake_software, cluster, scene_url, settings
) -> None:
    first = submit(project, fake_software, cluster, scene_url, frames="1-3", chunk_size=1)
    other = submit(other_project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1)
    urgent = submit(
        project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1, priority=3
    )
    with render_worker_for(cluster, settings, concurrency=1):
        for job in (first, other, urgent):
            job = wait_for(job, timeout=120)
            assert job.state == JobState.FINISHED, job.failure_reason
    order = started_order(first, other, urgent)
    # The urgent job first; then the two projects take turns.
    assert order == [urgent.pk, urgent.pk, first.pk, other.pk, first.pk, other.pk, first.pk]
