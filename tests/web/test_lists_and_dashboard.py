"""The dashboard and the running/finished lists: filters, search, paging, membership."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs.choices import JobState
from jobs.models import RenderJob
from projects.models import Project, StorageMapping

from .conftest import bulk_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def ads_job(image: Any, storage_url: str, fake_software: Any, cluster: Any) -> RenderJob:
    """A job of another project, with a failure: nobody but alice may see it."""
    ads = Project.objects.create(name="ads", image=image, output_prefix=storage_url + "ads/")
    StorageMapping.objects.create(project=ads, source=storage_url + "ads/", destination="/mnt/a/")
    [job] = bulk_jobs(ads, fake_software, cluster, 1)
    RenderJob.objects.filter(pk=job.pk).update(
        name="secret-spot", state=JobState.FAILED, failure_reason="ads secret failure"
    )
    return job


def test_dashboard_shows_running_jobs_failures_and_clusters(
    as_bob: Any, job: RenderJob, ads_job: RenderJob, cluster: Any
) -> None:
    RenderJob.objects.filter(pk=job.pk).update(failure_reason="")
    text = as_bob.get("/").content.decode()
    assert f"#{job.pk} shot_a" in text and "2/6" in text
    assert cluster.name in text
    assert "secret-spot" not in text and "ads secret failure" not in text


def test_dashboard_shows_failure_reasons_to_those_who_may_see_them(
    as_alice: Any, ads_job: RenderJob
) -> None:
    text = as_alice.get("/").content.decode()
    assert "secret-spot" in text and "ads secret failure" in text


def test_the_running_panel_polls_as_a_partial(as_bob: Any, job: RenderJob) -> None:
    response = as_bob.get("/", HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert "<html" not in text and 'id="running-panel"' in text and "every 3s" in text


def test_running_and_finished_lists(as_bob: Any, job: RenderJob, ads_job: RenderJob) -> None:
    running = as_bob.get("/jobs/")
    assert [j.pk for j in running.context["jobs"]] == [job.pk]
    assert [p.name for p in running.context["projects"]] == ["shots"]  # only bob's projects
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FINISHED)
    assert as_bob.get("/jobs/").context["jobs"] == []
    finished = as_bob.get("/jobs/finished/")
    assert [j.pk for j in finished.context["jobs"]] == [job.pk]  # not ads' failed job


def test_outsiders_see_empty_lists_not_errors(as_charlie: Any, job: RenderJob) -> None:
    response = as_charlie.get("/jobs/")
    assert response.status_code == 200 and response.context["jobs"] == []
    assert as_charlie.get(f"/jobs/?project={job.project_id}").context["jobs"] == []
    assert "shot_a" not in as_charlie.get("/").content.decode()


def test_filters_search_and_paging(
    as_alice: Any, alice: Any, bob: Any, project: Any, fake_software: Any, cluster: Any
) -> None:
    jobs = bulk_jobs(project, fake_software, cluster, 120)
    RenderJob.objects.filter(pk__in=[j.pk for j in jobs[:10]]).update(submitted_by=bob)
    running = RenderJob.objects.filter(state=JobState.RUNNING)
    assert running.count() == 60
    first = as_alice.get("/jobs/")
    newest = [j.pk for j in running.order_by("-created_at", "-id")]
    assert [j.pk for j in first.context["jobs"]] == newest[:50]
    assert first.context["page"].first and not first.context["page"].newer
    older = first.context["page"].older  # keyset paging: the next page starts after row 50
    second = as_alice.get(f"/jobs/?after={older}")
    assert [j.pk for j in second.context["jobs"]] == newest[50:]
    assert not second.context["page"].older and not second.context["page"].first
    back = as_alice.get(f"/jobs/?before={second.context['page'].newer}")
    assert [j.pk for j in back.context["jobs"]] == newest[:50] and back.context["page"].first
    for bad in ("x", "1_x", "99999999999999999999_3", "n_"):  # not a cursor: the first page
        assert [j.pk for j in as_alice.get(f"/jobs/?after={bad}").context["jobs"]] == newest[:50]
    by_bob = as_alice.get(f"/jobs/?user={bob.pk}").context["jobs"]
    assert {j.submitted_by_id for j in by_bob} == {bob.pk} and len(by_bob) == 5
    assert [j.name for j in as_alice.get("/jobs/?q=bulk-17").context["jobs"]] == ["bulk-17"]
    assert [j.pk for j in as_alice.get(f"/jobs/?q=%23{jobs[3].pk}").context["jobs"]] == [jobs[3].pk]
    finished = as_alice.get("/jobs/finished/?state=finished&project=" + str(project.pk))
    shown = list(finished.context["jobs"])
    shown += as_alice.get(
        f"/jobs/finished/?state=finished&project={project.pk}&after={finished.context['page'].older}"
    ).context["jobs"]
    assert len({j.pk for j in shown}) == 60  # every finished job once over the two pages
    assert as_alice.get("/jobs/?state=bogus&project=x&user=;").status_code == 200
    page_one = as_alice.get("/jobs/?q=bulk").content.decode()
    assert "?q=bulk&amp;after=" in page_one  # paging keeps the filters


def test_finished_jobs_without_an_end_time_page_through_too(
    as_alice: Any, project: Any, fake_software: Any, cluster: Any
) -> None:
    """Nulls sort first (as PostgreSQL's descending index keeps them): the cursor crosses
    from jobs without an end time to jobs with one without losing or repeating a row."""
    jobs = [j for j in bulk_jobs(project, fake_software, cluster, 140) if j.state == "finished"]
    ended = jobs[:40]
    for n, job in enumerate(ended):
        RenderJob.objects.filter(pk=job.pk).update(
            finished_at=timezone.now() - timedelta(minutes=n % 7)
        )
    seen: list[int] = []
    url = "/jobs/finished/"
    while url:
        page = as_alice.get(url).context["page"]
        seen += [j.pk for j in page.rows]
        url = f"/jobs/finished/?after={page.older}" if page.older else ""
    assert sorted(seen) == sorted(j.pk for j in jobs) and len(seen) == 70
    assert set(seen[:30]) == {j.pk for j in jobs[40:]}  # no end time: first


def test_the_submitted_by_menu_lists_submitters_of_visible_jobs(
    as_bob: Any, bob: Any, alice: Any, job: RenderJob, ads_job: RenderJob
) -> None:
    RenderJob.objects.filter(pk=job.pk).update(submitted_by=bob)
    RenderJob.objects.filter(pk=ads_job.pk).update(submitted_by=alice)  # not bob's project
    assert [u.username for u in as_bob.get("/jobs/").context["users"]] == [bob.username]
