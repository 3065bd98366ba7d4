"""The job page in real Chromium polls with the version it holds: an unchanged poll is a
304 that leaves the page as it is, and a frame that moves reaches its grid cell as a delta
(issue 19)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobs import live, services
from jobs.models import RenderJob, Task

from .conftest import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_polls_send_the_version_and_the_grid_takes_the_changed_cells(
    open_page: Any, bob: Any, job: RenderJob, monkeypatch: Any
) -> None:
    monkeypatch.setattr(live, "COALESCE_SECONDS", 0.0)  # each change shows at the next poll
    page = open_page(bob)
    polls: list[tuple[int, str, str]] = []  # status, If-None-Match sent, the cells it carried

    def seen(response: Any) -> None:
        if response.request.headers.get("hx-request") and "/jobs/" in response.url:
            body = response.text() if response.status == 200 else ""
            polls.append((response.status, response.request.headers.get("if-none-match", ""), body))

    page.on("response", seen)
    page.goto(f"/jobs/{job.pk}/")
    deadline = time.monotonic() + 15
    while not any(status == 304 for status, _, _ in polls) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert any(status == 304 and sent for status, sent, _ in polls), polls
    assert page.is_visible("#job-live .summary")  # a 304 swaps nothing away
    assert page.get_attribute("#frame-grid i[data-n='5']", "class") == "q"

    second = Task.objects.get(job=job, index=1)
    services.frame_started(second, 5)
    page.wait_for_selector("#frame-grid i[data-n='5'].r")
    services.frame_done(second, 5, seconds=1.0, output_url="", thumbnail_url="")
    page.wait_for_selector("#frame-grid i[data-n='5'].d")
    # The moves came as that one cell (index 4), not as every frame's letter.
    carried = [body for status, _, body in polls if status == 200]
    assert any('data-changes="4d"' in body for body in carried), carried
    assert not any("data-states=" in body for body in carried)
    assert page.get_attribute("#frame-grid i[data-n='1']", "class") == "d"  # others kept


CELLS = (
    "() => [...document.querySelectorAll('#frame-grid i')].map(c => c.dataset.n + c.className[0])"
)


def test_the_browser_builds_the_grid_counts_and_clock_from_the_compact_page(
    open_page: Any, bob: Any, job: RenderJob, monkeypatch: Any
) -> None:
    """Issue 19: the page sends a letter per frame and the numbers as ranges; the cells,
    the summary screen readers get and the elapsed time are made and kept in the browser."""
    monkeypatch.setattr(live, "COALESCE_SECONDS", 0.0)
    page = open_page(bob)
    page.goto(f"/jobs/{job.pk}/")
    assert page.evaluate(CELLS) == ["1d", "2d", "3r", "4f", "5q", "6q"]
    summary = "#grid-summary"
    assert (
        page.inner_text(summary) == "6 frames: 2 done, 1 running, 2 queued, 1 failed, 0 cancelled."
    )
    assert page.get_attribute("#frame-grid", "aria-describedby") == "grid-summary grid-help"

    services.frame_done(
        Task.objects.get(job=job, index=0), 3, seconds=1.0, output_url="", thumbnail_url=""
    )
    page.wait_for_selector("#frame-grid i[data-n='3'].d")
    page.wait_for_function(
        "() => document.querySelector('#grid-summary').textContent.startsWith("
        "'6 frames: 3 done, 0 running')"
    )
    # Elapsed counts up in the browser: the version no longer moves with the minute.
    elapsed = page.locator("time[data-since]")
    first = elapsed.inner_text()
    page.wait_for_function(
        "t => document.querySelector('time[data-since]').textContent !== t", arg=first
    )
    assert page.get_attribute("time[data-since]", "datetime")


def test_frame_numbers_with_gaps_and_steps_reach_their_cells(
    open_page: Any, bob: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-9x2,20,30-31")
    page = open_page(bob)
    page.goto(f"/jobs/{job.pk}/")
    assert page.evaluate(CELLS) == ["1q", "3q", "5q", "7q", "9q", "20q", "30q", "31q"]
    page.click("#frame-grid i[data-n='20']")  # click-through opens that frame's preview
    page.wait_for_selector("#frame-dialog[open] #frame-dialog-title:has-text('Frame 20')")
