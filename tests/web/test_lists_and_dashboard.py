"""The dashboard and the running/finished lists: filters, search, paging, membership."""

from __future__ import annotations

from typing import Any

import pytest

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
    first = as_alice.get("/jobs/")
    assert len(first.context["jobs"]) == 50
    assert first.context["page"].paginator.count == running.count() == 60
    assert len(as_alice.get("/jobs/?page=2").context["jobs"]) == 10
    assert as_alice.get("/jobs/?page=999").context["page"].number == 2  # clamped, not 404
    assert as_alice.get("/jobs/?page=x").context["page"].number == 1
    by_bob = as_alice.get(f"/jobs/?user={bob.pk}").context["jobs"]
    assert {j.submitted_by_id for j in by_bob} == {bob.pk} and len(by_bob) == 5
    assert [j.name for j in as_alice.get("/jobs/?q=bulk-17").context["jobs"]] == ["bulk-17"]
    assert [j.pk for j in as_alice.get(f"/jobs/?q=%23{jobs[3].pk}").context["jobs"]] == [jobs[3].pk]
    finished = as_alice.get("/jobs/finished/?state=finished&project=" + str(project.pk))
    assert finished.context["page"].paginator.count == 60
    assert as_alice.get("/jobs/?state=bogus&project=x&user=;").status_code == 200
    page_two = as_alice.get("/jobs/?q=bulk&page=1").content.decode()
    assert "?q=bulk&amp;page=2" in page_two  # paging keeps the filters
