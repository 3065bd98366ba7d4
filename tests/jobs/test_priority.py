"""Changing a job's priority after submit: the rule (jobs.scheduling.set_priority), and its
thin callers (admin, CLI, API)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command

from jobs import runner, services
from jobs.choices import JobState, TaskState
from jobs.models import RenderJob
from tests.jobs.conftest import submit_one as submit
from tests.workers import online_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(project: Any, fake_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    return submit(project, fake_software, cluster, scene_url, frames="1-4", chunk_size=1)


@pytest.mark.django_db(transaction=True)
def test_raising_a_waiting_jobs_priority_gives_it_the_next_free_slot(
    project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster, slots=1)
    first = submit(project, fake_software, cluster, scene_url, frames="1-3", chunk_size=1)
    second = submit(project, fake_software, cluster, scene_url, frames="1-2", chunk_size=1)
    outcome = services.set_priority(second, 10)
    assert outcome.ok and outcome.message == f"Job #{second.pk}: priority 0 → 10."
    running, _ = runner.claim(first.tasks.get(index=0).pk, "node-1")
    for number in running.frames:
        services.frame_done(running, number, seconds=0.1, output_url="", thumbnail_url="")
    services.task_finished(running, ok=True, reason="", exit_code=0, retryable=False)
    # The slot the older job's chunk left goes to the job whose priority was raised.
    sent = second.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=False)
    assert list(sent.values_list("index", flat=True)) == [0]
    assert not first.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=False).exists()


def test_bad_priorities_and_ended_jobs_are_refused(job: RenderJob) -> None:
    for wrong in (101, -101, True, "5"):
        outcome = services.set_priority(job, wrong)  # type: ignore[arg-type]
        assert not outcome.ok and outcome.message == "Priority must be between -100 and 100."
    assert services.set_priority(job, 0).message == f"Job #{job.pk} has priority 0 already."
    services.cancel_job(job)
    outcome = services.set_priority(job, 5)
    assert (
        not outcome.ok
        and outcome.message == f"Job #{job.pk} is already cancelled; its priority stays."
    )
    job.refresh_from_db()
    assert job.priority == 0


def test_the_cli_changes_it_and_refuses_bad_input(job: RenderJob, bob: Any, charlie: Any) -> None:
    out = io.StringIO()
    call_command("priority", f"#{job.pk}", "-20", "--as-user", bob.username, stdout=out)
    assert out.getvalue().strip() == f"Job #{job.pk}: priority 0 → -20."
    with pytest.raises(CommandError, match="between -100 and 100"):
        call_command("priority", str(job.pk), "500", stdout=io.StringIO())
    with pytest.raises(CommandError):  # not a member: the job does not exist for them
        call_command("priority", str(job.pk), "1", "--as-user", charlie.username)
    job.refresh_from_db()
    assert job.priority == -20


def test_the_api_changes_it_for_members_only(job: RenderJob, bob: Any, charlie: Any) -> None:
    from rest_framework.test import APIClient

    from api.services import create_token

    def client_for(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(user, 'cli')[1]}")
        return client

    url = f"/api/jobs/{job.pk}/priority/"
    member = client_for(bob)
    response = member.post(url, {"priority": -7}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["job"]["priority"] == -7
    assert member.post(url, {"priority": -7}, format="json").status_code == 409
    bad = member.post(url, {"priority": 1000}, format="json")
    assert bad.status_code == 400 and "priority" in bad.json()
    assert client_for(charlie).post(url, {"priority": -9}, format="json").status_code == 404
    job.refresh_from_db()
    assert job.priority == -7


def test_the_admin_changes_it_through_the_service(client: Any, alice: Any, job: RenderJob) -> None:
    client.force_login(alice)
    url = f"/admin/jobs/renderjob/{job.pk}/change/"
    form = client.get(url).content.decode()
    assert 'name="priority"' in form
    # What the browser sends back: the hidden inputs (the inlines' forms) and the fields.
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    # The job ends while the change form is open: the service refuses the new priority.
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FAILED)
    data = {**hidden, "name": "renamed", "priority": "30"}
    response = client.post(url, data, follow=True)
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"Job #{job.pk} is already failed; its priority stays." in notes
    job.refresh_from_db()
    assert (job.name, job.state, job.priority) == ("renamed", JobState.FAILED, 0)
