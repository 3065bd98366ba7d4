"""Job detail, its live partial, frame previews and the actions (POSTs through the services)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.choices import FrameState, JobState, TaskState
from jobs.models import RenderJob, Task
from tests.compute.fixtures import assert_says_the_stop_is_retried, assert_stopped_by_the_poller

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["as_alice", "as_bob"])
def test_members_see_the_grid_nodes_chunks_and_failure_reasons(
    request: Any, who: str, job: RenderJob
) -> None:
    client = request.getfixturevalue(who)
    response = client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    text = response.content.decode()
    # The grid as one letter per frame and the numbers as ranges (the browser makes the
    # cells), with the counts per state as text for screen readers and pages without script.
    assert 'data-numbers="1-6" data-cells="ddrfqq"' in text
    assert "6 frames: 2 done, 1 running, 2 queued, 1 failed, 0 cancelled." in text
    assert "Out of memory while loading textures" in text  # the reason as text, not a colour
    assert "render@node-a" in text and "188%" in text  # node, CPU use
    assert response.context["frame_total"] == 6
    assert response.context["counts"]["done"] == 2
    assert 'hx-trigger="every 2s"' in text  # polling while active


def test_outsiders_and_unknown_jobs_get_404(as_charlie: Any, job: RenderJob) -> None:
    for url in (
        f"/jobs/{job.pk}/",
        f"/jobs/{job.pk}/frames/1/",
        f"/jobs/{job.pk}/frames/1/thumbnail/",
        f"/jobs/{job.pk}/frames/1/preview/",
        f"/jobs/{job.pk}/chunks/0/logs/",
        f"/jobs/{job.pk}/chunks/0/logs/stdout/download/",
        f"/jobs/{job.pk}/outputs/",
        f"/jobs/{job.pk}/outputs.zip",
    ):
        assert as_charlie.get(url).status_code == 404, url
    for action in ("cancel", "retry", "requeue", "chunks/0/requeue"):
        assert as_charlie.post(f"/jobs/{job.pk}/{action}/").status_code == 404
    job.refresh_from_db()
    assert job.state == JobState.RUNNING


def test_unknown_ids_are_404_not_500(as_alice: Any, job: RenderJob) -> None:
    for url in (
        "/jobs/999999/",
        f"/jobs/{job.pk}/frames/999/",
        f"/jobs/{job.pk}/frames/5/thumbnail/",  # queued: no thumbnail yet
        f"/jobs/{job.pk}/chunks/99/logs/",
        f"/jobs/{job.pk}/chunks/0/logs/bogus/download/",
    ):
        assert as_alice.get(url).status_code == 404, url
    assert as_alice.post("/jobs/999999/cancel/").status_code == 404
    assert as_alice.get(f"/jobs/{job.pk}/chunks/0/logs/?log=../../etc").status_code == 400


def test_the_live_partial_carries_one_letter_per_frame(as_bob: Any, job: RenderJob) -> None:
    response = as_bob.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert 'data-states="ddrfqq"' in text
    assert "<html" not in text and "frame-grid" not in text  # the grid is updated, not re-sent


def test_a_finished_job_stops_polling(as_bob: Any, finished_job: RenderJob) -> None:
    text = as_bob.get(f"/jobs/{finished_job.pk}/").content.decode()
    assert "every 2s" not in text
    assert "Retry failed" in text and "Cancel job" not in text


def test_frame_thumbnail_preview_and_info(as_bob: Any, job: RenderJob) -> None:
    thumb = as_bob.get(f"/jobs/{job.pk}/frames/1/thumbnail/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert thumb.content[:3] == b"\xff\xd8\xff"
    assert "private" in thumb["Cache-Control"]
    preview = as_bob.get(f"/jobs/{job.pk}/frames/1/preview/")
    assert preview["Content-Type"] == "image/png" and preview.content[:4] == b"\x89PNG"
    info = as_bob.get(f"/jobs/{job.pk}/frames/1/").content.decode()
    assert "Frame 1" in info and "/storage/signed/" in info
    failed = as_bob.get(f"/jobs/{job.pk}/frames/4/").content.decode()
    assert "Out of memory while loading textures" in failed


def test_cancel_goes_through_the_service_and_back(as_bob: Any, job: RenderJob) -> None:
    response = as_bob.post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert response.redirect_chain[-1][0] == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert not job.frame_set.filter(state__in=(FrameState.QUEUED, FrameState.RUNNING)).exists()
    assert f"Cancelled job #{job.pk} (1 chunk stopped)." in response.content.decode()
    again = as_bob.post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert f"Job #{job.pk} is already cancelled; nothing to cancel." in again.content.decode()


def test_cancel_says_when_the_cloud_job_could_not_be_stopped_yet(
    as_alice: Any, unstoppable_cloud_job: RenderJob, fake_bc: Any
) -> None:
    job = unstoppable_cloud_job
    response = as_alice.post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert response.status_code == 200
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert shown[0] == ("success", f"Cancelled job #{job.pk} (3 chunks stopped).")
    [(level, warning)] = shown[1:]
    assert level == "warning"
    assert_says_the_stop_is_retried(job, warning)
    assert warning in response.content.decode()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert_stopped_by_the_poller(job, fake_bc)


def test_retry_requeues_the_failed_chunk(as_alice: Any, finished_job: RenderJob) -> None:
    response = as_alice.post(f"/jobs/{finished_job.pk}/retry/")
    assert response.status_code == 302
    finished_job.refresh_from_db()
    assert finished_job.state == JobState.RUNNING
    assert finished_job.tasks.get(index=1).state == TaskState.QUEUED
    assert finished_job.frames_failed == 0


def test_requeue_job_and_chunk(as_bob: Any, job: RenderJob) -> None:
    assert as_bob.post(f"/jobs/{job.pk}/chunks/0/requeue/").status_code == 302
    task = Task.objects.get(job=job, index=0)
    assert task.state == TaskState.QUEUED and task.node == ""
    assert not job.frame_set.filter(state=FrameState.RUNNING).exists()
    response = as_bob.post(f"/jobs/{job.pk}/requeue/", follow=True)
    assert "Requeued 1 queued or running chunks" in response.content.decode()


def test_actions_need_post_and_csrf(client: Any, bob: Any, job: RenderJob) -> None:
    client.force_login(bob)
    assert client.get(f"/jobs/{job.pk}/cancel/").status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    assert strict.post(f"/jobs/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.state == JobState.RUNNING


def test_anonymous_users_are_sent_to_log_in(client: Any, job: RenderJob) -> None:
    for url in ("/", "/jobs/", f"/jobs/{job.pk}/", "/submit/", "/clusters/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
