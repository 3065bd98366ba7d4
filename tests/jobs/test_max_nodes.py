"""A job's ``max_nodes``: at most that many of its chunks run at once, on any broker (the
manager sends no more messages than that; each chunk that ends sends the next)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from clusters.choices import Backend
from jobs import runner, services
from jobs.choices import JobState, TaskState
from jobs.models import RenderJob
from tests.jobs.conftest import submit_one as submit
from tests.workers import online_node, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


def sent(job: RenderJob) -> int:
    return job.tasks.filter(queued_at__isnull=False).count()


def test_only_max_nodes_chunks_are_sent_and_each_end_sends_the_next(
    project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster, slots=4)
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-4", chunk_size=1, max_nodes=2
    )
    assert job.max_nodes == 2 and sent(job) == 2
    assert services.dispatch(job.pk) == 0  # no free place: nothing more
    task, _ = runner.claim(job.tasks.get(index=0).pk, "n")
    assert services.dispatch(job.pk) == 0  # running counts as taken
    services.frame_done(task, 1, seconds=1.0, output_url="", thumbnail_url="")
    services.task_finished(task, ok=True, reason="", exit_code=0, retryable=False)
    # The ended chunk's place went to the next one, and only to it.
    assert [t.queued_at is not None for t in job.tasks.filter(index__gte=1)] == [True, True, False]


def test_max_nodes_is_checked_at_submit(project, fake_software, cluster, scene_url) -> None:
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-4", max_nodes=99)
    assert refused.value.message_dict["max_nodes"] == [
        f"At most nodes must be between 1 and {cluster.max_nodes}."
    ]
    type(cluster).objects.filter(pk=cluster.pk).update(backend=Backend.BATCHCOMPUTE)
    cluster.refresh_from_db()
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-4", max_nodes=1)
    assert "give fewer nodes instead" in refused.value.message_dict["max_nodes"][0]


def test_a_real_worker_with_two_slots_runs_one_chunk_at_a_time(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-3", chunk_size=1, max_nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    most = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal most
        while not stop.is_set():
            most = max(most, job.tasks.filter(state=TaskState.RUNNING).count())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = wait_for(job, timeout=120)
    finally:
        stop.set()
        watcher.join()
    assert job.state == JobState.FINISHED and job.frames_done == 3
    assert most == 1
    starts = sorted(job.tasks.values_list("started_at", "finished_at"))
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(starts))
