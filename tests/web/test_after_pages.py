"""Jobs that run after others on the staff pages: the submit field, the job page's
"waits for" note and hold reason, cancelling with the jobs waiting for it; the admin and
API callers of the same services (jobs.scheduling)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages

from jobs import services
from jobs.choices import JobState
from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def first(project: Any, fake_software: Any, cluster: Any, storage_tree: Any) -> RenderJob:
    request = services.RenderRequest(
        project=project, software=fake_software, cluster=cluster,
        scenes=[project.mappings.get().source + "shot_a.blend"], frames="1-4", nodes=1,
    )  # fmt: skip
    return services.submit_render(request)[0]


def form_data(project: Any, fake_software: Any, cluster: Any, **extra: Any) -> dict[str, Any]:
    return {
        "project": project.pk,
        "software": fake_software.pk,
        "cluster": cluster.pk,
        "scenes": [project.mappings.get().source + "seq/shot_b.blend"],
        "frames": "1-4",
        "nodes": "1",
        "priority": "0",
        **extra,
    }


def test_the_submit_page_makes_a_job_wait_and_its_page_says_for_what(
    as_bob: Any,
    project: Any,
    fake_software: Any,
    cluster: Any,
    first: RenderJob,
    django_capture_on_commit_callbacks: Any,
) -> None:
    page = as_bob.get(f"/submit/?project={project.pk}").content.decode()
    assert 'name="after"' in page and "Run after jobs" in page
    response = as_bob.post(
        "/submit/", form_data(project, fake_software, cluster, after=f"#{first.pk}")
    )
    job = RenderJob.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.is_waiting and list(job.after.all()) == [first]
    page = as_bob.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="badge s-waiting">Waiting</span>' in page
    assert f'<a href="/jobs/{first.pk}/">#{first.pk} shot_a</a> (queued) to finish.' in page

    with django_capture_on_commit_callbacks(execute=True):  # the state change is announced
        services.cancel_job(first)
    page = as_bob.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="badge s-waiting">Held</span>' in page
    assert f"Held: job #{first.pk} (shot_a) cancelled." in page


def test_the_submit_page_refuses_a_bad_or_unknown_job_next_to_the_field(
    as_bob: Any, project: Any, fake_software: Any, cluster: Any
) -> None:
    bad = as_bob.post("/submit/", form_data(project, fake_software, cluster, after="twelve"))
    assert "&#x27;twelve&#x27; is not a job id like 12 or #12." in bad.content.decode()
    unknown = as_bob.post("/submit/", form_data(project, fake_software, cluster, after="4242"))
    assert "There is no job #4242." in unknown.content.decode()
    assert not RenderJob.objects.exists()


def test_cancel_on_the_job_page_can_take_the_jobs_waiting_for_it(
    as_bob: Any, project: Any, fake_software: Any, cluster: Any, first: RenderJob
) -> None:
    as_bob.post("/submit/", form_data(project, fake_software, cluster, after=str(first.pk)))
    after = RenderJob.objects.exclude(pk=first.pk).get()
    assert 'name="cascade"' in as_bob.get(f"/jobs/{first.pk}/").content.decode()
    response = as_bob.post(f"/jobs/{first.pk}/cancel/", {"cascade": "1"}, follow=True)
    assert f"Also cancelled the jobs waiting for it: #{after.pk}." in response.content.decode()
    after.refresh_from_db()
    assert after.state == JobState.CANCELLED


def test_the_admin_cancels_with_the_jobs_waiting(
    client: Any, alice: Any, project: Any, fake_software: Any, cluster: Any, first: RenderJob
) -> None:
    request = services.RenderRequest(
        project=project, software=fake_software, cluster=cluster, scenes=[first.scene_url],
        frames="1", nodes=1, after=[first.pk],
    )  # fmt: skip
    [after] = services.submit_render(request)
    client.force_login(alice)
    response = client.post(
        "/admin/jobs/renderjob/", {"action": "cancel_jobs_cascade", "_selected_action": [first.pk]}
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [
        f"Cancelled job #{first.pk} (1 chunk stopped). "
        f"Also cancelled the jobs waiting for it: #{after.pk}."
    ]


def test_the_api_submits_after_a_job_shows_it_and_cancels_with_cascade(
    client: Any, bob: Any, project: Any, fake_software: Any, cluster: Any, first: RenderJob
) -> None:
    from rest_framework.test import APIClient

    from api.services import create_token

    _token, key = create_token(bob, "tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    payload = {
        "project": "shots",
        "software": fake_software.pk,
        "cluster": cluster.name,
        "scenes": [first.scene_url],
        "frames": "1-2",
        "after": [first.pk],
    }
    response = api.post("/api/jobs/", payload, format="json")
    assert response.status_code == 201, response.content
    [job] = response.json()["jobs"]
    assert job["after"] == [first.pk] and job["waiting"] is True and job["hold_reason"] == ""
    refused = api.post("/api/jobs/", {**payload, "after": [987654]}, format="json")
    assert refused.status_code == 400 and refused.json() == {"after": ["There is no job #987654."]}

    cancelled = api.post(f"/api/jobs/{first.pk}/cancel/", {"cascade": True}, format="json")
    assert cancelled.status_code == 200
    assert cancelled.json()["detail"].endswith(
        f"Also cancelled the jobs waiting for it: #{job['id']}."
    )
    listed = api.get("/api/jobs/").json()["results"]
    assert {j["id"]: j["state"] for j in listed} == {first.pk: "cancelled", job["id"]: "cancelled"}
