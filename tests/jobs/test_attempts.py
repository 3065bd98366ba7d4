"""Every attempt of a chunk keeps its own record and logs: a retried chunk still shows
attempt 1's renderer error next to attempt 2's, on the logs page, its download and the CLI.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from jobs import runner, services
from jobs.choices import JobState, TaskState
from jobs.models import AttemptState, RenderJob, Task, TaskAttempt
from renderhub import storage
from tests.web.conftest import submit
from tests.workers import wait_for

RENDERER_ERROR = "Error: Build without OpenImageDenoiser"


def publish(task: Task, number: int, stderr: str, *, store: bool = True) -> None:
    """What a worker does at the end of an attempt: logs to storage, tails on the task row."""
    log_url = storage.join(task.job.output_url, "_logs", f"task-{task.index}-attempt-{number}/")
    if store:
        backend, prefix = storage.resolve(log_url)
        backend.write(prefix + "stderr.log", f"Blender 3.4\n{stderr}\n".encode())
        backend.write(prefix + "agent.log", f"agent: attempt {number}\n".encode())
    Task.objects.filter(pk=task.pk).update(
        log_url=log_url, stderr_tail=stderr, agent_log_tail=f"agent: attempt {number}\n"
    )


def run_attempt(task_id: int, node: str, *, ok: bool, stderr: str = "", store: bool = True) -> str:
    claimed = runner.claim(task_id, node)
    assert claimed is not None
    task, attempt = claimed
    publish(task, attempt.number, stderr, store=store)
    return services.task_finished(
        task, ok=ok, reason="" if ok else stderr, exit_code=0 if ok else 1, retryable=True
    )


@pytest.fixture
def retried(project: Any, fake_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    """A one-chunk job whose attempt 1 failed on node-a and attempt 2 finished on node-b."""
    job = submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    Task.objects.filter(pk=task.pk).update(state=TaskState.QUEUED)
    assert run_attempt(task.pk, "render@node-a", ok=False, stderr=RENDERER_ERROR) == "queued"
    assert run_attempt(task.pk, "render@node-b", ok=True, stderr="all good") == "done"
    return job


@pytest.mark.django_db
def test_each_attempt_keeps_its_node_outcome_reason_and_logs(retried: RenderJob) -> None:
    first, second = TaskAttempt.objects.filter(job=retried).order_by("number")
    assert (first.number, first.node, first.state) == (1, "render@node-a", AttemptState.FAILED)
    assert first.failure_reason == RENDERER_ERROR and first.exit_code == 1
    assert first.stderr_tail == RENDERER_ERROR and first.log_url.endswith("attempt-1/")
    assert (second.number, second.node, second.state) == (2, "render@node-b", AttemptState.DONE)
    assert second.stderr_tail == "all good" and second.log_url.endswith("attempt-2/")
    assert first.finished_at and second.started_at and first.finished_at <= second.started_at


@pytest.mark.django_db
def test_the_logs_page_shows_the_latest_and_lets_you_pick_an_earlier_attempt(
    client: Any, bob: Any, retried: RenderJob
) -> None:
    client.force_login(bob)
    url = f"/jobs/{retried.pk}/chunks/0/logs/"
    latest = client.get(url + "?log=stderr")
    assert latest.context["attempt"].number == 2
    text = latest.content.decode()
    assert "all good" in text and RENDERER_ERROR not in text
    assert "?attempt=1&amp;log=stderr" in text and "Attempt 2" in text
    first = client.get(url + "?attempt=1&log=stderr").content.decode()
    assert RENDERER_ERROR in first and "From storage" in first  # the stored file
    assert "render@node-a" in first and "Attempt 1 failed" in first
    download = client.get(f"/jobs/{retried.pk}/chunks/0/logs/stderr/download/?attempt=1")
    assert RENDERER_ERROR in b"".join(download.streaming_content).decode()
    assert "attempt1" in download["Content-Disposition"]
    for bad in ("?attempt=3", "?attempt=0", "?attempt=x", "?attempt=-1"):
        assert client.get(url + bad).status_code == 404, bad


@pytest.mark.django_db
def test_an_attempt_without_a_stored_log_shows_its_tail(
    client: Any, bob: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1", nodes=1)
    task = job.tasks.get()
    Task.objects.filter(pk=task.pk).update(state=TaskState.QUEUED)
    run_attempt(task.pk, "render@a", ok=False, stderr="näive ünïcode error ✗", store=False)
    run_attempt(task.pk, "render@a", ok=True, stderr="fine")
    client.force_login(bob)
    text = client.get(f"/jobs/{job.pk}/chunks/0/logs/?attempt=1&log=stderr").content.decode()
    assert "näive ünïcode error ✗" in text and "tail kept in the database" in text


@pytest.mark.django_db
def test_a_running_attempt_is_live_and_earlier_ones_are_not(
    client: Any, bob: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1", nodes=1)
    task = job.tasks.get()
    Task.objects.filter(pk=task.pk).update(state=TaskState.QUEUED)
    run_attempt(task.pk, "render@a", ok=False, stderr=RENDERER_ERROR)
    claimed = runner.claim(task.pk, "render@b")
    assert claimed is not None
    Task.objects.filter(pk=task.pk).update(stderr_tail="rendering now")
    client.force_login(bob)
    live = client.get(f"/jobs/{job.pk}/chunks/0/logs/?log=stderr")
    assert live.context["live"] and "rendering now" in live.content.decode()
    assert 'hx-trigger="every 2s"' in live.content.decode()
    old = client.get(f"/jobs/{job.pk}/chunks/0/logs/?attempt=1&log=stderr")
    assert not old.context["live"] and RENDERER_ERROR in old.content.decode()


@pytest.mark.django_db
def test_cancel_and_requeue_close_the_open_attempt(
    project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    first, second = job.tasks.order_by("index")
    Task.objects.filter(job=job).update(state=TaskState.QUEUED)
    assert runner.claim(first.pk, "render@a") and runner.claim(second.pk, "render@b")
    assert services.requeue_task(first, reason="node stuck")
    services.cancel_job(job)
    states = dict(TaskAttempt.objects.filter(job=job).values_list("task__index", "state"))
    assert states == {0: AttemptState.REQUEUED, 1: AttemptState.CANCELLED}
    assert TaskAttempt.objects.get(task=first).failure_reason == "node stuck"


@pytest.mark.django_db
def test_numbers_count_on_across_a_job_retry(retried: RenderJob) -> None:
    task = retried.tasks.get()
    Task.objects.filter(pk=task.pk).update(state=TaskState.FAILED)
    RenderJob.objects.filter(pk=retried.pk).update(state=JobState.FAILED, frames_done=0)
    retried.refresh_from_db()
    assert services.retry_job(retried) == 1
    run_attempt(task.pk, "render@node-c", ok=True, stderr="third")
    task.refresh_from_db()
    assert task.attempts == 1  # the task's counter restarts with the job's retry
    numbers = list(task.history.values_list("number", "node"))
    assert numbers == [(1, "render@node-a"), (2, "render@node-b"), (3, "render@node-c")]
    assert task.history.get(number=3).log_url.endswith("attempt-3/")  # no overwrite


@pytest.mark.django_db
def test_chunks_from_before_attempts_were_recorded_still_show_their_logs(
    client: Any, bob: Any, retried: RenderJob
) -> None:
    TaskAttempt.objects.filter(job=retried).delete()  # as an old job has none
    client.force_login(bob)
    response = client.get(f"/jobs/{retried.pk}/chunks/0/logs/?log=stderr")
    assert response.status_code == 200 and "all good" in response.content.decode()
    assert response.context["attempt"] is None
    assert client.get(f"/jobs/{retried.pk}/chunks/0/logs/?attempt=2").status_code == 200
    assert client.get(f"/jobs/{retried.pk}/chunks/0/logs/?attempt=1").status_code == 404
    out = StringIO()
    call_command("logs", str(retried.pk), "--task", "0", "--stderr", stdout=out, stderr=StringIO())
    assert "all good" in out.getvalue()


@pytest.mark.django_db
def test_the_cli_shows_an_earlier_attempt(retried: RenderJob) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "logs", str(retried.pk), "--task", "0", "--attempt", "1", "--stderr", stdout=out, stderr=err
    )
    assert RENDERER_ERROR in out.getvalue()
    assert "attempt 1 on render@node-a: failed" in err.getvalue()
    out = StringIO()
    call_command("logs", str(retried.pk), "--task", "0", "--stderr", stdout=out)
    assert "all good" in out.getvalue()  # the default stays the latest
    with pytest.raises(CommandError, match=r"no attempt 7 \(attempts: 1, 2\)"):
        call_command("logs", str(retried.pk), "--task", "0", "--attempt", "7")
    with pytest.raises(CommandError, match="--attempt needs --task"):
        call_command("logs", str(retried.pk), "--attempt", "1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.embedded
def test_a_real_worker_keeps_each_attempts_logs_in_its_own_folder(
    project: Any,
    fake_software: Any,
    cluster: Any,
    scene_url: str,
    render_worker: Any,
    settings: Any,
) -> None:
    settings.RENDER_TASK_MAX_ATTEMPTS = 2
    job = submit(
        project, fake_software, cluster, scene_url, frames="1", nodes=1, parameters={"mode": "fail"}
    )
    job = wait_for(job)
    assert job.state == JobState.FAILED
    job.parameters = {"mode": "ok"}  # fixed; the user retries
    job.save(update_fields=["parameters"])
    assert services.retry_job(job) == 1
    job = wait_for(job, states=(JobState.FINISHED, JobState.FAILED))
    assert job.state == JobState.FINISHED
    attempts = list(job.tasks.get().history.order_by("number"))
    assert [a.state for a in attempts] == ["failed", "failed", "done"]
    assert len({a.log_url for a in attempts}) == 3
    for attempt in attempts[:2]:
        backend, prefix = storage.resolve(attempt.log_url)
        assert "License server unreachable" in backend.read(prefix + "stderr.log").decode()
        assert "License server unreachable" in attempt.failure_reason
    backend, prefix = storage.resolve(attempts[2].log_url)
    assert "License server" not in backend.read(prefix + "stderr.log").decode()


@pytest.mark.django_db
def test_the_migration_keeps_each_started_chunks_last_attempt(retried: RenderJob) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("jobs.migrations.0004_attempts")
    TaskAttempt.objects.all().delete()
    Task.objects.filter(job=retried).update(attempts=2, state=TaskState.QUEUED)
    migration.record_last_attempts(apps, None)
    [row] = TaskAttempt.objects.filter(job=retried)
    assert (row.number, row.node, row.state) == (2, "render@node-b", AttemptState.FAILED)
    assert row.log_url.endswith("attempt-2/") and row.stderr_tail == "all good"


@pytest.mark.django_db
def test_cloud_chunks_keep_each_attempts_instance_and_reason(
    submitted: RenderJob,
    fake_bc: Any,
    cloud_oss: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from jobs.backends.batchcompute import poll as cloud_poll
    from jobs.backends.batchcompute.finish import instance_logs
    from tests.compute.fixtures import FINISHED_OK, cloud_job_of, render_events, write_events

    first_cloud_job = cloud_job_of(submitted)
    cloud_id = first_cloud_job.cloud_id
    fake_bc.start_instances(cloud_id)
    failed = {"event": "finished", "status": "renderer_failed", "exit_code": 4}
    write_events(cloud_oss, first_cloud_job, 1, [{**failed, "reason": f"3: {RENDERER_ERROR}"}])
    for _ in range(3):  # BatchCompute's own retries: one attempt of RenderHub's
        fake_bc.finish_instance(cloud_id, 1, exit_code=4)
    for i, frames in ((0, [1, 2]), (2, [5, 6])):
        write_events(cloud_oss, first_cloud_job, i, [*render_events(frames), FINISHED_OK])
        fake_bc.finish_instance(cloud_id, i)
    cloud_poll.poll_all()
    [first] = TaskAttempt.objects.filter(job=submitted, task__index=1)
    assert first.state == AttemptState.FAILED and RENDERER_ERROR in first.failure_reason
    assert (first.cloud_job_id, first.cloud_instance) == (first_cloud_job.pk, 1)
    assert instance_logs(first)["stderr"].endswith(f"{cloud_id}.render.1")
    assert TaskAttempt.objects.filter(job=submitted, state=AttemptState.DONE).count() == 2

    submitted.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.retry_job(submitted) == 1  # a new cloud job for the failed chunk
    cloud_poll.poll_all()
    second_cloud_job = submitted.cloud_jobs.exclude(pk=first_cloud_job.pk).get()
    fake_bc.start_instances(second_cloud_job.cloud_id)
    write_events(cloud_oss, second_cloud_job, 0, [*render_events([3, 4]), FINISHED_OK])
    fake_bc.finish_instance(second_cloud_job.cloud_id, 0)
    cloud_poll.poll_all()
    attempts = list(TaskAttempt.objects.filter(job=submitted, task__index=1).order_by("number"))
    assert [(a.number, a.state, a.cloud_job_id) for a in attempts] == [
        (1, AttemptState.FAILED, first_cloud_job.pk),
        (2, AttemptState.DONE, second_cloud_job.pk),
    ]
    assert RENDERER_ERROR in attempts[0].failure_reason  # still there after the retry
