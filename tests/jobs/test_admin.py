"""The render job admin: pages, the Submit render form, and the job actions.

Submissions run through the services; dispatch is enqueued on commit, which the plain
``db`` fixture never fires, so nothing here reaches a broker.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, Task
from tests.compute.fixtures import assert_says_the_stop_is_retried, assert_stopped_by_the_poller

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/renderjob/"
SUBMIT = "/admin/jobs/renderjob/submit/"


@pytest.fixture
def admin_client(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


@pytest.fixture
def job(project: Any, blender_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    request = services.RenderRequest(
        project=project,
        software=blender_software,
        cluster=cluster,
        scenes=[scene_url],
        frames="1-6",
        nodes=2,
    )
    return services.submit_render(request)[0]


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def field_errors(page: str, field: str) -> list[str]:
    """The error messages rendered in the form row of ``field``."""
    row = re.search(
        r'<div class="form-row errors">\s*<ul class="errorlist"[^>]*>(.*?)</ul>\s*'
        rf'<div><label for="id_{field}">',
        page,
        re.S,
    )
    return re.findall(r"<li>(.*?)</li>", row.group(1), re.S) if row else []


def submit_data(project: Any, software: Any, cluster: Any, scene: str, **overrides: Any) -> dict:
    data = {
        "project": project.pk,
        "software": software.pk,
        "cluster": cluster.pk,
        "scenes": scene,
        "frames": "1-12",
        "nodes": "3",
        "chunk_size": "",
        "parameters": "",
        "priority": "0",
        "name": "",
    }
    data.update(overrides)
    return data


# --- pages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/jobs/renderjob/",
        "/admin/jobs/renderjob/{job}/change/",
        "/admin/jobs/task/",
        "/admin/jobs/task/{task}/change/",
        "/admin/jobs/frame/",
        "/admin/jobs/frame/{frame}/change/",
        "/admin/jobs/renderjob/?state__exact=queued",
        "/admin/jobs/renderjob/?q=shot_a",
    ],
)
def test_the_admin_pages_open(admin_client: Any, job: RenderJob, url: str) -> None:
    task = job.tasks.first()
    frame = Frame.objects.filter(job=job).first()
    response = admin_client.get(url.format(job=job.pk, task=task.pk, frame=frame.pk))
    assert response.status_code == 200


def test_the_changelist_shows_progress(admin_client: Any, job: RenderJob) -> None:
    RenderJob.objects.filter(pk=job.pk).update(frames_done=2, frames_failed=1)
    page = text_of(admin_client.get(CHANGELIST))
    assert '<progress value="2" max="6"></progress> 2/6, 1 failed' in page


def test_the_changelist_links_the_submit_page_with_its_storage_browser(admin_client: Any) -> None:
    page = text_of(admin_client.get(CHANGELIST))
    assert '<a href="/submit/" class="addlink">Submit render</a>' in page
    assert f'<a href="{SUBMIT}">Submit by scene URL</a>' in page
    assert 'href="/submit/"' in text_of(admin_client.get(SUBMIT))  # no scene typed by hand


def test_jobs_are_not_added_through_the_generic_form(admin_client: Any) -> None:
    assert admin_client.get("/admin/jobs/renderjob/add/").status_code == 403


def test_the_job_page_lists_its_chunks(admin_client: Any, job: RenderJob) -> None:
    page = text_of(admin_client.get(f"/admin/jobs/renderjob/{job.pk}/change/"))
    for task in job.tasks.all():
        assert f"/admin/jobs/task/{task.pk}/change/" in page
    assert "1-3" in page and "4-6" in page


# --- Submit render ----------------------------------------------------------------------


def test_the_submit_form_opens(admin_client: Any, project: Any) -> None:
    response = admin_client.get(SUBMIT)
    assert response.status_code == 200
    page = text_of(response)
    for field in ("project", "software", "cluster", "scenes", "frames", "nodes", "chunk_size"):
        assert f'name="{field}"' in page
    assert f'<option value="{project.pk}">shots</option>' in page


def test_submitting_creates_a_job_and_redirects(
    admin_client: Any, alice: Any, project: Any, blender_software: Any, cluster: Any, scene_url
) -> None:
    data = submit_data(project, blender_software, cluster, scene_url, parameters="format=JPEG")
    response = admin_client.post(SUBMIT, data)
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    job = RenderJob.objects.get()
    assert (job.project, job.submitted_by, job.frame_count, job.node_count) == (
        project,
        alice,
        12,
        3,
    )
    assert job.parameters == {"engine": "CYCLES", "format": "JPEG"}
    assert job.tasks.count() == 3
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown[0] == f"Submitted #{job.pk}."
    # The stand-in scene is no .blend: the submitter is told its facts went unchecked.
    assert shown[1:] == [
        "shot_a.blend: its scene facts could not be read (29 bytes is too small for a saved "
        ".blend file); its frame range and scenes were not checked."
    ]


def test_submitting_several_scenes_makes_one_job_each(
    admin_client: Any, project: Any, blender_software: Any, cluster: Any, scene_url, storage_root
) -> None:
    (storage_root / "scenes" / "shot_b.blend").write_bytes(b"x")
    scenes = f"{scene_url}\n\n{scene_url.replace('shot_a', 'shot_b')}\n"
    response = admin_client.post(SUBMIT, submit_data(project, blender_software, cluster, scenes))
    assert response.status_code == 302
    assert sorted(RenderJob.objects.values_list("name", flat=True)) == ["shot_a", "shot_b"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"frames": "1-x"}, "frames", "'1-x' is not a frame"),
        ({"frames": "10-1"}, "frames", "Range '10-1' runs backwards; write it as 1-10."),
        ({"chunk_size": "4"}, "chunk_size", "Give nodes or a chunk size, not both."),
        ({"nodes": "99"}, "nodes", "Nodes must be between 1 and 4"),
        ({"parameters": "quality"}, "parameters", "Line 1: write parameters as name=value."),
        ({"parameters": "samples=64"}, "parameters", "Unknown parameter 'samples'"),
        ({"parameters": "format=GIF"}, "parameters", "must be one of PNG, JPEG"),
    ],
)
def test_a_bad_submission_shows_the_error_next_to_the_field(
    admin_client: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    scene_url: str,
    overrides: dict[str, str],
    field: str,
    message: str,
) -> None:
    data = submit_data(project, blender_software, cluster, scene_url, **overrides)
    response = admin_client.post(SUBMIT, data)
    assert response.status_code == 200
    errors = field_errors(text_of(response), field)
    assert any(message in e for e in errors), errors
    assert not RenderJob.objects.exists()


def test_a_missing_scene_is_reported_on_the_scenes_field(
    admin_client: Any, project: Any, blender_software: Any, cluster: Any, storage_url: str
) -> None:
    missing = storage_url + "scenes/nope.blend"
    data = submit_data(project, blender_software, cluster, missing)
    page = text_of(admin_client.post(SUBMIT, data))
    assert field_errors(page, "scenes") == [f"{missing} does not exist."]
    assert not RenderJob.objects.exists()


# --- actions ----------------------------------------------------------------------------


def act(client: Any, action: str, *jobs: RenderJob) -> Any:
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(j.pk) for j in jobs]}
    )


def test_cancel_stops_the_job_its_chunks_and_frames(admin_client: Any, job: RenderJob) -> None:
    response = act(admin_client, "cancel_jobs", job)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.finished_at is not None
    assert set(job.tasks.values_list("state", flat=True)) == {TaskState.CANCELLED}
    assert set(job.frame_set.values_list("state", flat=True)) == {FrameState.CANCELLED}
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Cancelled job #{job.pk} (2 chunks stopped)."
    ]


def test_cancel_leaves_ended_jobs_alone(admin_client: Any, job: RenderJob) -> None:
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FINISHED)
    response = act(admin_client, "cancel_jobs", job)
    job.refresh_from_db()
    assert job.state == JobState.FINISHED
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Job #{job.pk} is already finished; nothing to cancel."
    ]


def test_cancel_says_when_a_cloud_job_could_not_be_stopped_yet(
    admin_client: Any, unstoppable_cloud_job: RenderJob, fake_bc: Any
) -> None:
    job = unstoppable_cloud_job
    response = act(admin_client, "cancel_jobs", job)
    assert response.status_code == 302
    shown = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert shown[0] == ("success", f"Cancelled job #{job.pk} (3 chunks stopped).")
    [(level, warning)] = shown[1:]
    assert level == "warning"
    assert_says_the_stop_is_retried(job, warning)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert_stopped_by_the_poller(job, fake_bc)


def test_retry_queues_the_cancelled_chunks_again(admin_client: Any, job: RenderJob) -> None:
    services.cancel_job(job)
    first, second = job.tasks.order_by("index")
    Task.objects.filter(pk=first.pk).update(state=TaskState.DONE)
    response = act(admin_client, "retry_jobs", job)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.finished_at is None
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == TaskState.DONE
    assert (second.state, second.attempts, second.queued_at) == (TaskState.QUEUED, 0, None)
    assert set(Frame.objects.filter(task=second).values_list("state", flat=True)) == {
        FrameState.QUEUED
    }
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Queued 1 chunk(s) again."]


def test_requeue_puts_running_chunks_back_in_the_queue(admin_client: Any, job: RenderJob) -> None:
    task = job.tasks.order_by("index").first()
    Task.objects.filter(pk=task.pk).update(
        state=TaskState.RUNNING, node="render@stuck", heartbeat_at=timezone.now(), pid=4242
    )
    Frame.objects.filter(task=task, number=1).update(state=FrameState.RUNNING)
    response = act(admin_client, "requeue_jobs", job)
    task.refresh_from_db()
    assert (task.state, task.node, task.pid, task.queued_at) == (TaskState.QUEUED, "", None, None)
    assert Frame.objects.get(job=job, number=1).state == FrameState.QUEUED
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Requeued 2 chunk(s)."]


def test_requeue_a_single_chunk_from_the_task_list(admin_client: Any, job: RenderJob) -> None:
    task = job.tasks.order_by("index").first()
    Task.objects.filter(pk=task.pk).update(state=TaskState.RUNNING, node="render@stuck")
    admin_client.post(
        "/admin/jobs/task/", {"action": "requeue_tasks", "_selected_action": [str(task.pk)]}
    )
    task.refresh_from_db()
    assert (task.state, task.node) == (TaskState.QUEUED, "")
