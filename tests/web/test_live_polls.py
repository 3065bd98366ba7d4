"""Live partials answer an unchanged poll with a bodiless 304, and a changed one with what
changed (issue 19): the job page (its grid as a delta), the running list, the dashboard's
running panel, a chunk's live log and the cluster pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import live, services
from jobs.models import RenderJob, Task

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def no_coalescing(monkeypatch: Any) -> None:
    """Each change shows at the next poll (the page coalesces changes within 2 s)."""
    monkeypatch.setattr(live, "COALESCE_SECONDS", 0.0)


def poll(client: Any, url: str, etag: str = "") -> Any:
    headers = dict(HX)
    if etag:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return client.get(url, **headers)


def assert_unchanged(client: Any, url: str, etag: str, assert_queries: Any) -> None:
    """304, no body, no template, and the session, the user and the version query only."""
    with assert_queries(3):
        response = poll(client, url, etag)
    assert response.status_code == 304, url
    assert response.content == b""
    assert not response.templates  # nothing rendered
    assert response["ETag"] == etag


def test_an_unchanged_job_poll_is_a_bodiless_304(
    as_bob: Any, job: RenderJob, django_assert_max_num_queries: Any
) -> None:
    url = f"/jobs/{job.pk}/"
    first = poll(as_bob, url)
    assert first.status_code == 200
    etag = first["ETag"]
    assert first["Cache-Control"] == "no-store"  # the page's script keeps the version
    held = f'data-etag="&quot;{etag.strip(chr(34))}&quot;"'  # the version, for the script
    assert held in first.content.decode()
    assert_unchanged(as_bob, url, etag, django_assert_max_num_queries)
    # A full page load carries the same version for the script to send back.
    assert held in as_bob.get(url).content.decode()


def test_a_frame_that_moves_is_sent_as_its_cell_only(as_bob: Any, job: RenderJob) -> None:
    url = f"/jobs/{job.pk}/"
    etag = poll(as_bob, url)["ETag"]  # the grid is "ddrfqq"
    second = Task.objects.get(job=job, index=1)
    services.frame_started(second, 5)
    moved = poll(as_bob, url, etag)
    assert moved.status_code == 200 and moved["ETag"] != etag
    text = moved.content.decode()
    assert 'data-changes="4r"' in text and "data-states" not in text
    services.frame_done(second, 5, seconds=1.5, output_url="", thumbnail_url="")
    done = poll(as_bob, url, moved["ETag"])
    assert 'data-changes="4d"' in done.content.decode()
    assert ">3<" in done.content.decode()  # the Done count in the summary moved too


def test_a_poller_whose_version_is_unknown_gets_every_cell(as_bob: Any, job: RenderJob) -> None:
    response = poll(as_bob, f"/jobs/{job.pk}/", '"not-a-version-we-made"')
    assert response.status_code == 200
    assert 'data-states="ddrfqq"' in response.content.decode()


def test_a_job_state_change_ends_the_304s(as_bob: Any, job: RenderJob) -> None:
    url = f"/jobs/{job.pk}/"
    etag = poll(as_bob, url)["ETag"]
    services.cancel_job(job)
    response = poll(as_bob, url, etag)
    assert response.status_code == 200
    text = response.content.decode()
    assert "Cancelled" in text and "every 2s" not in text  # ended: no more polling


def test_a_heartbeat_moves_the_job_and_its_live_log(as_bob: Any, job: RenderJob) -> None:
    job_url, log_url = f"/jobs/{job.pk}/", f"/jobs/{job.pk}/chunks/0/logs/?log=stdout"
    job_etag, log_etag = poll(as_bob, job_url)["ETag"], poll(as_bob, log_url)["ETag"]
    assert poll(as_bob, log_url, log_etag).status_code == 304
    # What the render worker's heartbeat writes: the time, CPU use and the log tails.
    Task.objects.filter(job=job, index=0).update(
        heartbeat_at=timezone.now(), cpu_percent=99.0, stdout_tail="Fra:3 Sample 9/16\n"
    )
    log = poll(as_bob, log_url, log_etag)
    assert log.status_code == 200 and "Sample 9/16" in log.content.decode()
    assert poll(as_bob, log_url, log["ETag"]).status_code == 304
    page = poll(as_bob, job_url, job_etag)
    assert page.status_code == 200 and "99%" in page.content.decode()


def test_the_running_list_and_the_dashboard_panel(
    as_bob: Any, job: RenderJob, django_assert_max_num_queries: Any
) -> None:
    for url in ("/jobs/", "/"):
        first = poll(as_bob, url)
        assert first.status_code == 200 and "data-etag=" in first.content.decode()
        assert_unchanged(as_bob, url, first["ETag"], django_assert_max_num_queries)
    etags = {url: poll(as_bob, url)["ETag"] for url in ("/jobs/", "/")}
    services.frame_done(
        Task.objects.get(job=job, index=0), 3, seconds=2.0, output_url="", thumbnail_url=""
    )
    for url, etag in etags.items():
        response = poll(as_bob, url, etag)
        assert response.status_code == 200, url
        assert "3/6" in response.content.decode(), url  # the progress moved


def test_the_cluster_pages(as_bob: Any, cluster: Any, django_assert_max_num_queries: Any) -> None:
    for url in ("/clusters/", f"/clusters/{cluster.pk}/"):
        etag = poll(as_bob, url)["ETag"]
        assert_unchanged(as_bob, url, etag, django_assert_max_num_queries)
        ClusterNode.objects.update_or_create(
            cluster=cluster, name=f"render@{len(url)}", defaults={"last_seen": timezone.now()}
        )
        response = poll(as_bob, url, etag)
        assert response.status_code == 200 and f"render@{len(url)}" in response.content.decode()


def test_the_partial_rendered_once_carries_each_viewers_own_csrf_token(
    alice: Any, bob: Any, job: RenderJob
) -> None:
    """Alice's poll renders the partial; Bob gets the same HTML with his own token, and the
    Cancel form in it posts with CSRF checks on."""
    from django.test import Client

    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(alice)
    second.force_login(bob)
    url = f"/jobs/{job.pk}/"
    alices = first.get(url, **HX).content.decode()
    bobs = second.get(url, **HX).content.decode()
    token = bobs.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    assert token and token not in alices and "\ue000" not in bobs
    response = second.post(f"/jobs/{job.pk}/cancel/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "cancelled"


def test_changes_within_two_seconds_are_shown_together(
    as_bob: Any, job: RenderJob, monkeypatch: Any
) -> None:
    """A busy job moves many times a second: its page is re-made at most every 2 s, and
    until then every poller keeps the version shown (304), so they share one rendering."""
    monkeypatch.setattr(live, "COALESCE_SECONDS", 2.0)
    url = f"/jobs/{job.pk}/"
    etag = poll(as_bob, url)["ETag"]
    services.frame_started(Task.objects.get(job=job, index=1), 5)
    assert poll(as_bob, url, etag).status_code == 304  # the change waits for the next window
    monkeypatch.setattr(live, "COALESCE_SECONDS", 0.0)  # the window has passed
    moved = poll(as_bob, url, etag)
    assert moved.status_code == 200 and 'data-changes="4r"' in moved.content.decode()


def test_the_minute_does_not_move_the_pages_of_active_jobs(
    as_bob: Any, job: RenderJob, monkeypatch: Any
) -> None:
    """Elapsed time and the ETA are instants the browser counts from (``<time>``), so every
    viewer of a running job no longer gets a new page when the minute turns; without
    script the page shows them as they were when it was made."""
    url = f"/jobs/{job.pk}/"
    first = poll(as_bob, url)
    text = first.content.decode()
    started = int(job.started_at.timestamp() * 1000)
    assert f'data-since="{started}"' in text
    lists = {u: poll(as_bob, u) for u in ("/jobs/", "/")}  # the running list, the dashboard
    for response in lists.values():
        assert f'data-since="{started}"' in response.content.decode()
    api = as_bob.get("/api/jobs/?state=running")
    same = as_bob.get("/api/jobs/?state=running", HTTP_IF_NONE_MATCH=api["ETag"])
    assert same.status_code == 304
    now = live.time.time()
    monkeypatch.setattr(live.time, "time", lambda: now + 600)  # ten minutes on
    assert poll(as_bob, url, first["ETag"]).status_code == 304
    for list_url, response in lists.items():
        assert poll(as_bob, list_url, response["ETag"]).status_code == 304, list_url
    # Nor does the API's: it sends the instants its numbers count from.
    again = as_bob.get("/api/jobs/?state=running", HTTP_IF_NONE_MATCH=api["ETag"])
    assert again.status_code == 304
    detail = as_bob.get(f"/api/jobs/{job.pk}/").json()
    assert detail["started_at"] and "eta_at" in detail


def test_frame_numbers_are_sent_as_ranges() -> None:
    assert live.frame_ranges(list(range(1, 100_001))) == "1-100000"
    assert live.frame_ranges([1, 3, 5, 7, 9, 20, 30, 31]) == "1-9x2,20,30-31"
    assert live.frame_ranges([0, 10, 11, 40]) == "0,10-11,40"
    assert live.frame_ranges([]) == ""


def test_the_eta_is_sent_as_the_instant_it_ends(
    as_bob: Any, job: RenderJob, monkeypatch: Any
) -> None:
    """The browser counts down to ``data-until``; the text is the time left when rendered."""
    monkeypatch.setattr(live.timing, "eta", lambda job: live.timing.Eta(90.0, 1, None))
    text = as_bob.get(f"/jobs/{job.pk}/").content.decode()
    until = int(text.split('data-until="')[1].split('"')[0])
    assert abs(until - (live.time.time() + 90) * 1000) < 3000
    assert re.search(r'data-until="\d+">1:(29|30)</time>', text)
