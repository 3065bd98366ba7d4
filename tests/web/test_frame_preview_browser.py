"""The preview dialog and the grid's status line name the same frame, in real Chromium.

The bug: clicking a cell focused the grid first, which selected frame 1 (or the frame last
reached by keyboard), so the status line named another frame than the dialog showed.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import RenderJob

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
