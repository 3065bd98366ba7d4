"""Jobs that run after others (jobs.scheduling): they wait, start when everything upstream
finished, are held with a reason when an upstream job fails, and cancelling can cascade."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from jobs import runner, services
from jobs.choices import JobState, TaskState
from jobs.models import RenderJob, Task
from tests.workers import online_node, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


@pytest.fixture
def submit(project: Any, fake_software: Any, cluster: Any, scene_url: str) -> Any:
    online_node(cluster)  # chunks are sent only to free node slots (jobs.dispatch)

    def submit(frames: str = "1-2", user: Any = None, **kw: Any) -> RenderJob:
        kw.setdefault("nodes", 1)
        request = services.RenderRequest(
            project=project,
            software=fake_software,
            cluster=cluster,
            scenes=[scene_url],
            frames=frames,
            **kw,
        )
        return services.submit_render(request, user)[0]

    return submit


def render(job: RenderJob, *, ok: bool = True) -> RenderJob:
    """Every chunk of the job run to its end through the services, as a worker would."""
    for task in job.tasks.all():
        now = timezone.now()
        Task.objects.filter(pk=task.pk).update(
            state=TaskState.RUNNING, attempts=F("attempts") + 1, node="n", started_at=now
        )
        task.refresh_from_db()
        services.task_started(task)
        if ok:
            for number in task.frames:
                services.frame_done(task, number, seconds=1.0, output_url="", thumbnail_url="")
        services.task_finished(
            task, ok=ok, reason="" if ok else "boom", exit_code=0 if ok else 1, retryable=False
        )
    job.refresh_from_db()
    return job


def sent(job: RenderJob) -> int:
    return job.tasks.filter(queued_at__isnull=False).count()


def test_a_job_waits_for_every_upstream_job_then_starts(submit: Any) -> None:
    first, second = submit(), submit()
    after = submit(after=[first.pk, second.pk])
    assert after.is_waiting and sent(after) == 0
    assert runner.claim(after.tasks.get().pk, "n") is None
    assert set(after.after.all()) == {first, second}

    assert render(first).state == JobState.FINISHED
    after.refresh_from_db()
    assert after.is_waiting and after.hold_reason == ""  # the second has not finished
    render(second)
    after.refresh_from_db()
    assert not after.waiting and sent(after) == 1
    assert runner.claim(after.tasks.get().pk, "n") is not None


def test_a_job_after_finished_jobs_starts_at_once(submit: Any) -> None:
    done = render(submit())
    after = submit(after=[done.pk])
    assert not after.waiting and sent(after) == 1


def test_a_failed_upstream_holds_it_with_a_reason_until_retried(submit: Any) -> None:
    first = submit()
    after = submit(after=[first.pk])
    assert render(first, ok=False).state == JobState.FAILED
    after.refresh_from_db()
    assert after.is_waiting and after.state == JobState.QUEUED
    assert after.hold_reason == (
        f"Held: job #{first.pk} (shot_a) failed. Retry it to go on, or cancel this job."
    )
    services.retry_job(first)
    after.refresh_from_db()
    assert after.is_waiting and after.hold_reason == ""
    render(first)
    after.refresh_from_db()
    assert not after.waiting and sent(after) == 1


def test_cancelling_holds_the_jobs_after_it_or_cancels_them_with_cascade(submit: Any) -> None:
    first = submit()
    second = submit(after=[first.pk])
    third = submit(after=[second.pk])
    other = submit()
    outcome = services.cancel_job(first)
    assert outcome.message == f"Cancelled job #{first.pk} (1 chunk stopped)."
    second.refresh_from_db()
    assert second.is_waiting and f"job #{first.pk} (shot_a) cancelled" in second.hold_reason

    outcome = services.cancel_job(first, cascade=True)  # first is cancelled already
    assert outcome.ok and outcome.count == 2
    assert outcome.message.endswith(
        f"Also cancelled the jobs waiting for it: #{second.pk}, #{third.pk}."
    )
    states = dict(RenderJob.objects.values_list("pk", "state"))
    assert states[second.pk] == states[third.pk] == JobState.CANCELLED
    assert states[other.pk] == JobState.QUEUED


def test_submit_refuses_unknown_hidden_and_failed_upstream_jobs(
    submit: Any, project: Any, bob: Any, charlie: Any, other_project_job: Any
) -> None:
    failed = render(submit(), ok=False)
    with pytest.raises(services.SubmissionError) as refused:
        submit(after=[failed.pk, 999_999, other_project_job.pk], user=bob)
    assert sorted(refused.value.message_dict["after"]) == [
        f"Job #{failed.pk} is failed: a job after it would never start (retry it first).",
        f"There is no job #{other_project_job.pk}.",  # another project's: hidden from bob
        "There is no job #999999.",
    ]


@pytest.fixture
def other_project_job(image: Any, storage_url: str, storage_root: Any, fake_software, cluster):
    from projects.models import Project, StorageMapping

    other = Project.objects.create(name="ads", image=image, output_prefix=storage_url + "ads/")
    StorageMapping.objects.create(project=other, source=storage_url + "ads/", destination="/ads/")
    (storage_root / "ads").mkdir(exist_ok=True)
    (storage_root / "ads" / "spot.blend").write_bytes(b"spot")
    request = services.RenderRequest(
        project=other, software=fake_software, cluster=cluster,
        scenes=[storage_url + "ads/spot.blend"], frames="1", nodes=1,
    )  # fmt: skip
    return services.submit_render(request)[0]


def test_with_a_real_worker_the_job_after_starts_once_the_first_finished(
    submit: Any, render_worker: Any
) -> None:
    first = submit("1-3", parameters={"mode": "steady"})
    after = submit("1-2", after=[first.pk])
    after = wait_for(after, timeout=120)
    first.refresh_from_db()
    assert first.state == after.state == JobState.FINISHED, after.failure_reason
    assert after.started_at >= first.finished_at


def test_beats_sweep_starts_a_job_whose_upstream_finished_unheard(submit: Any) -> None:
    from jobs import tasks

    first = submit()
    after = submit(after=[first.pk])
    # The upstream job finished, but the manager stopped before the signal was sent.
    RenderJob.objects.filter(pk=first.pk).update(state=JobState.FINISHED)
    assert after.tasks.get().queued_at is None
    tasks.dispatch_pending()
    after.refresh_from_db()
    assert not after.waiting and sent(after) == 1
