"""Page cost does not grow with rows: a bounded number of queries for any number of jobs/frames."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, Task

from .conftest import bulk_jobs

pytestmark = pytest.mark.django_db

STATES = [
    FrameState.DONE,
    FrameState.DONE,
    FrameState.RUNNING,
    FrameState.QUEUED,
    FrameState.FAILED,
]


def big_job(project: Any, software: Any, cluster: Any, frames: int, chunks: int) -> RenderJob:
    [job] = bulk_jobs(project, software, cluster, 1, frames=frames)
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, frames_done=frames * 2 // 5, frames_failed=frames // 5
    )
    size = frames // chunks
    tasks = Task.objects.bulk_create(
        Task(
            job=job,
            index=i,
            frames=list(range(i * size + 1, (i + 1) * size + 1)),
            state=TaskState.RUNNING if i % 3 else TaskState.DONE,
            node=f"render@node-{i % 8}",
            cpu_percent=150.0,
            current_frame=i * size + 1,
            attempts=1,
        )
        for i in range(chunks)
    )
    Frame.objects.bulk_create(
        (
            Frame(job=job, task=tasks[(n - 1) // size], number=n, state=STATES[n % len(STATES)])
            for n in range(1, frames + 1)
        ),
        batch_size=2000,
    )
    job.refresh_from_db()
    return job


@pytest.mark.parametrize("count", [5, 200])
def test_job_lists_cost_the_same_for_5_or_200_jobs(
    as_bob: Any,
    project: Any,
    fake_software: Any,
    cluster: Any,
    django_assert_max_num_queries: Any,
    count: int,
) -> None:
    bulk_jobs(project, fake_software, cluster, count)
    for url in ("/jobs/", "/jobs/finished/", "/", f"/jobs/?project={project.pk}&q=bulk"):
        # Seven, plus two for the nav's Software permission check (a non-superuser's user
        # and group permissions, read once a request); the dashboard adds the user's
        # projects (one) and its running jobs' ETAs: their versions (one, jobs.live keeps
        # each ETA per job version), then at most six queries for all of them (speed
        # history, running chunks, waiting work, online nodes, node blocks).
        with django_assert_max_num_queries(7 + 2 + (1 + 1 + 6 if url == "/" else 0)):
            assert as_bob.get(url).status_code == 200


@pytest.mark.parametrize(("frames", "chunks"), [(50, 5), (5000, 100)])
def test_job_detail_costs_the_same_for_50_or_5000_frames(
    as_bob: Any,
    project: Any,
    fake_software: Any,
    cluster: Any,
    django_assert_max_num_queries: Any,
    frames: int,
    chunks: int,
) -> None:
    job = big_job(project, fake_software, cluster, frames, chunks)
    # Eleven (the nav's permission check included; the frames per chunk are counted by
    # the database), the ETA's six at most (see above), one for the links to the nodes'
    # pages, the version (jobs.live) and the grid's states and numbers and the versions
    # the ETA is kept by (read once per version, then shared by every viewer through the
    # cache).
    with django_assert_max_num_queries(21):
        page = as_bob.get(f"/jobs/{job.pk}/")
    text = page.content.decode()
    assert f'data-numbers="1-{frames}"' in text  # the grid: numbers as a range, a letter each
    assert len(text.split('data-cells="')[1].split('"')[0]) == frames
    with django_assert_max_num_queries(21):
        assert as_bob.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true").status_code == 200
    with django_assert_max_num_queries(5 + 2):  # and the nav's permission check
        assert as_bob.get(f"/jobs/{job.pk}/outputs/").status_code == 200


@pytest.mark.parametrize("url", ["/jobs/", "/jobs/finished/", "/jobs/?q=bulk"])
def test_job_lists_count_no_rows_and_page_by_keyset(
    as_bob: Any, project: Any, fake_software: Any, cluster: Any, url: str
) -> None:
    """Issue 19: at 100,000 jobs a list page must not count every visible job for its pager
    (no COUNT), skip pages with OFFSET, or build the submitter menu from every job."""
    bulk_jobs(project, fake_software, cluster, 130)
    first = as_bob.get(url)
    older = first.context["page"].older
    assert older and len(first.context["jobs"]) == 50
    for address in (url, f"{url}{'&' if '?' in url else '?'}after={older}"):
        with CaptureQueriesContext(connection) as queries:
            assert as_bob.get(address).status_code == 200
        sql = [q["sql"].upper() for q in queries.captured_queries]
        assert not [s for s in sql if "COUNT(" in s], sql
        assert not [s for s in sql if " OFFSET " in s], sql
        # The submitter menu asks per user (EXISTS), not DISTINCT over the jobs.
        assert not [s for s in sql if "DISTINCT" in s and "JOBS_RENDERJOB" in s], sql


def test_a_20000_frame_job_page_stays_small(
    as_bob: Any, project: Any, fake_software: Any, cluster: Any
) -> None:
    """The grid is sent as a letter per frame (the browser makes the cells): a 20,000-frame
    job's page is tens of KB, where one element per frame made it 700 KB."""
    job = big_job(project, fake_software, cluster, 20_000, 40)
    size = len(as_bob.get(f"/jobs/{job.pk}/").content)
    assert size < 150_000, size
    assert len(as_bob.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content) < 150_000
