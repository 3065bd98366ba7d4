from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.models import RenderJob, Task
from renderhub import storage

from .conftest import render_task, start_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(submit: Any, scene_url: str) -> RenderJob:
    job = submit(scene_url, "1-4", nodes=2)
    done = render_task(job.tasks.get(index=0))
    publish(done, agent="agent line 1\nagent line 2\n", stdout="Fra:1 Mem:12M\n")
    Task.objects.filter(pk=done.pk).update(
        agent_log_tail="agent line 2\n", stdout_tail="Fra:1 Mem:12M\n"
    )
    running = start_task(job.tasks.get(index=1), node="node-2")
    Task.objects.filter(pk=running.pk).update(agent_log_tail="rendering frame 3\n")
    return job


def publish(task: Task, **logs: str) -> None:
    """What the runner does when an attempt ends: log files in storage, log_url on the row."""
    log_url = storage.join(task.job.output_url, "_logs", f"task-{task.index}-attempt-1/")
    backend, prefix = storage.resolve(log_url)
    for name, text in logs.items():
        backend.write(f"{prefix}{name}.log", text.encode())
    Task.objects.filter(pk=task.pk).update(log_url=log_url)


def test_it_shows_every_tasks_agent_log_tail(run: Any, job: RenderJob) -> None:
    out = run("logs", str(job.pk)).out

    assert out == (
        "==> task 0 (frames 1-2, done on node-1): agent.log (last lines) <==\n"
        "agent line 2\n"
        "\n"
        "==> task 1 (frames 3-4, running on node-2): agent.log (last lines) <==\n"
        "rendering frame 3\n"
        "\n"
    )


def test_it_shows_another_streams_tails(run: Any, job: RenderJob) -> None:
    out = run("logs", str(job.pk), "--stdout").out
    assert "stdout.log (last lines) <==\nFra:1 Mem:12M\n\n" in out
    assert "running on node-2): stdout.log (last lines) <==\n(empty)\n" in out


def test_it_prints_a_whole_log_from_storage(run: Any, job: RenderJob) -> None:
    result = run("logs", str(job.pk), "--task", "0")
    assert (result.out, result.err) == ("agent line 1\nagent line 2\n", "")
    assert run("logs", str(job.pk), "--task", "0", "--stdout").out == "Fra:1 Mem:12M\n"
    publish(job.tasks.get(index=0), stderr="")
    assert run("logs", str(job.pk), "--task", "0", "--stderr").out == ""


def test_it_falls_back_to_the_database_tail_while_a_task_runs(run: Any, job: RenderJob) -> None:
    result = run("logs", str(job.pk), "--task", "1")
    assert result.out == "rendering frame 3\n"
    assert "still running; showing the last lines kept in the database" in result.err


def test_it_falls_back_when_the_file_is_missing(run: Any, job: RenderJob) -> None:
    result = run("logs", str(job.pk), "--task", "0", "--stderr")
    assert result.out == "(empty)\n"
    assert "stderr.log is not in storage yet" in result.err


def test_it_refuses_two_streams_and_unknown_tasks(run: Any, job: RenderJob) -> None:
    with pytest.raises(CommandError, match="argument --stderr/--log-stderr: not allowed"):
        run("logs", str(job.pk), "--stdout", "--stderr")
    with pytest.raises(CommandError, match=rf"Job #{job.pk} has no task 9 \(tasks 0-1\)"):
        run("logs", str(job.pk), "--task", "9")


def test_it_hides_another_projects_job(run: Any, job: RenderJob, charlie: Any) -> None:
    with pytest.raises(CommandError, match=rf"^There is no job #{job.pk}\.$"):
        run("logs", str(job.pk), "--as-user", "charlie")
    with pytest.raises(CommandError, match=r"^There is no job #999\.$"):
        run("logs", "999", "--as-user", "charlie")


def test_node_logs_are_only_for_cloud_chunks(run: Any, job: RenderJob) -> None:
    with pytest.raises(CommandError, match="did not run on BatchCompute"):
        run("logs", str(job.pk), "--task", "0", "--node-stderr")
    with pytest.raises(CommandError, match="need --task N"):
        run("logs", str(job.pk), "--node-stdout")
