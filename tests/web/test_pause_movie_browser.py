"""In a real Chromium, with a real render worker: pause a job from its page, see that it
starts nothing while another job renders, resume it, and play its preview movie."""

from __future__ import annotations

import importlib
import shutil
from typing import Any

import pytest
from django.apps import apps

from jobs.choices import JobState
from tests.workers import render_worker_for, wait_for

from .conftest import submit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

PLAYED = (
    "() => { const v = document.querySelector('#preview-movie');"
    " return !!v && v.readyState >= 2 && v.currentTime > 0 && v.videoWidth === 32 }"
)


def test_pause_resume_and_play_the_preview_movie(
    open_page: Any,
    alice: Any,
    project: Any,
    fake_software: Any,
    image: Any,
    cluster: Any,
    scene_url: str,
    settings: Any,
) -> None:
    importlib.import_module("images.migrations.0005_ffmpeg").create(apps, None)
    job = submit(project, fake_software, cluster, scene_url, frames="1-6", chunk_size=2, movie=True)
    page = open_page(alice)
    page.goto(f"/jobs/{job.pk}/")
    page.click("button:has-text('Pause') >> nth=0")
    page.wait_for_selector(".messages:has-text('Paused job')")
    page.wait_for_selector(".summary .badge.s-paused:has-text('Paused')")
    page.wait_for_selector("#movie:has-text('encodes the frames once they are all done')")

    with render_worker_for(cluster, settings, prefix="web"):
        # The worker is free and renders another job; the paused one starts nothing.
        other = wait_for(submit(project, fake_software, cluster, scene_url, frames="1", nodes=1))
        assert other.state == JobState.FINISHED
        job.refresh_from_db()
        assert job.state == JobState.QUEUED and job.frames_done == 0 and job.is_paused

        page.click("button:has-text('Resume')")
        page.wait_for_selector(".messages:has-text('Resumed job')")
        movie = wait_for(job.movies.get(), timeout=120)
    assert movie.state == JobState.FINISHED, movie.failure_reason
    job.refresh_from_db()
    assert job.state == JobState.FINISHED and job.frames_done == 6

    page.goto(f"/jobs/{job.pk}/")
    video = page.wait_for_selector("#preview-movie")
    assert video.get_attribute("src").startswith("/storage/signed/")
    page.evaluate("() => { const v = document.querySelector('#preview-movie'); v.muted = true;"
                  " return v.play() }")  # fmt: skip
    page.wait_for_function(PLAYED, timeout=15_000)
    assert page.locator("a:has-text('Download the MP4')").count() == 1
