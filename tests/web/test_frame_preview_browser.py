"""The job page in real Chromium: the preview dialog and the grid's status line name the
same frame; a node's page and an earlier attempt's log are a click away.

The bug: clicking a cell focused the grid first, which selected frame 1 (or the frame last
reached by keyboard), so the status line named another frame than the dialog showed.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs.models import RenderJob, TaskAttempt

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_status_names_the_frame_the_preview_shows(
    open_page: Any, bob: Any, job: RenderJob
) -> None:
    # job: frames 1-2 done (with images), 3 running, 4 failed, 5-6 queued.
    page = open_page(bob)
    page.goto(f"/jobs/{job.pk}/")
    page.click("#frame-grid i[data-n='2']")  # by mouse, the grid not focused before
    page.wait_for_selector("#frame-dialog[open] h2:has-text('Frame 2')")
    assert "Frame 2: done" in page.inner_text("#grid-status")
    page.keyboard.press("Escape")

    page.keyboard.press("ArrowRight")  # the keyboard goes on from the clicked frame
    assert "Frame 3: running" in page.inner_text("#grid-status")
    page.keyboard.press("Enter")
    page.wait_for_selector("#frame-dialog[open] h2:has-text('Frame 3')")
    assert "Frame 3: running" in page.inner_text("#grid-status")
    page.keyboard.press("Escape")

    page.click(".failed-card button:has-text('Frame 4')")  # from the failed-frames list
    page.wait_for_selector("#frame-dialog[open] h2:has-text('Frame 4')")
    assert "Frame 4: failed" in page.inner_text("#grid-status")
    page.keyboard.press("Escape")

    page.click("#frame-grid i[data-n='6']")  # another click, the grid focused already
    page.wait_for_selector("#frame-dialog[open] h2:has-text('Frame 6')")
    assert "Frame 6: queued" in page.inner_text("#grid-status")


def test_from_the_job_page_to_a_node_and_an_earlier_attempts_log(
    open_page: Any, bob: Any, job: RenderJob
) -> None:
    # job: chunk 0 renders on render@node-a (attempt 1); chunk 1 failed on render@node-b.
    for name in ("render@node-a", "render@node-b"):
        ClusterNode.objects.create(
            cluster=job.cluster, name=name, last_seen=timezone.now(), cpu_count=8, concurrency=1
        )
    second = job.tasks.get(index=1)
    TaskAttempt.objects.create(
        task=second,
        job=job,
        number=1,
        node="render@node-b",
        state="failed",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        exit_code=1,
        failure_reason="Out of memory",
        stderr_tail="Error: Out of memory allocating 12 GB",
        agent_log_tail="agent: chunk 1 (frames 4-6) on render@node-b\n"
        "agent: blender exited with 1\nagent: frames 4-6 not rendered\n",
    )
    page = open_page(bob)
    page.goto(f"/jobs/{job.pk}/")
    page.click(".nodes-card a:has-text('render@node-b')")
    page.wait_for_selector("h1:has-text('render@node-b')")
    row = page.locator("#history-title ~ table tbody tr").first
    assert "Out of memory" in row.inner_text() and f"#{job.pk}" in row.inner_text()
    screenshot(page, "node", full_page=True)
    row.locator("a:has-text('stderr')").click()
    page.wait_for_selector("#log-text:has-text('Out of memory allocating 12 GB')")
    assert page.locator(".tabs.attempts [aria-current=page]").inner_text().startswith("Attempt 1")
