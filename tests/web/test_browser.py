"""The staff pages in a real headless Chromium, against a live server and a real render worker.

Set RENDERHUB_SCREENSHOTS=docs/screenshots to refresh the README's screenshots.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from jobs.choices import FrameState, JobState
from jobs.models import RenderJob
from tests.conftest import build_demo_scene
from tests.workers import render_worker_for, wait_for

from .conftest import screenshot, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALL_DONE = (
    "() => [...document.querySelectorAll('#frame-grid i')].every(c => c.className[0] === 'd')"
)
PART_DONE = (
    "() => { const s = [...document.querySelectorAll('#frame-grid i')].map(c => c.className[0]);"
    " return s.includes('d') && s.some(x => x !== 'd') }"
)
IMAGE_LOADED = (
    "sel => { const i = document.querySelector(sel);"
    " return !!i && i.complete && i.naturalWidth > 0 }"
)


def test_log_in_browse_submit_and_watch_the_grid_fill(
    open_page: Any,
    bob: Any,
    project: Any,
    fake_software: Any,
    cluster: Any,
    storage_tree: Path,
    settings: Any,
) -> None:
    page = open_page(None)
    page.goto("/")
    page.fill("#id_username", "bob")  # the login page LoginRequiredMiddleware sends us to
    page.fill("#id_password", "pw-bob-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/")
    assert page.locator("h1").inner_text() == "Dashboard"

    page.click("text=Submit render >> nth=0")
    page.select_option("#project-choice", str(project.pk))  # auto-submits
    page.wait_for_selector("#browser")
    page.click("#browser a:has-text('scenes/')")
    page.locator("#browser").get_by_label("shot_a.blend", exact=True).check()
    page.click("#browser a:has-text('seq/')")
    page.wait_for_selector("#browser [aria-current=location]:has-text('seq')")
    assert page.locator("#browser .scene-box").count() == 2  # shot_b, shot_c; not notes.txt
    page.locator("#browser").get_by_label("shot_b.blend", exact=True).check()
    page.click("#browser nav a:has-text('scenes/')")  # breadcrumb back up
    page.wait_for_selector("#browser a:has-text('seq/')")
    expect(
        page.locator("#browser").get_by_label("shot_a.blend", exact=True)
    ).to_be_checked()  # kept across folders

    page.select_option("#id_software", label="fakerender (local-linux)")
    page.wait_for_selector("#id_param_mode")  # the software's parameters, as typed fields
    page.select_option("#id_param_mode", "ok")
    page.select_option("#id_cluster", str(cluster.pk))
    page.fill("#id_frames", "1-6")
    page.fill("#id_nodes", "2")
    page.wait_for_selector("#estimate:has-text('12 frames')")
    assert page.locator("#selected-scenes input:checked").count() == 2

    page.click("button:has-text('Submit render')")
    page.wait_for_url("**/jobs/?project=*")
    jobs = list(RenderJob.objects.order_by("pk"))
    assert [j.name for j in jobs] == ["shot_a", "shot_b"]
    assert all(j.submitted_by == bob and j.state == JobState.QUEUED for j in jobs)

    page.click(f"a:has-text('#{jobs[0].pk} shot_a')")
    page.wait_for_selector("#frame-grid i.q")  # queued: no worker yet
    with render_worker_for(cluster, settings, prefix="web"):
        page.wait_for_function(ALL_DONE, timeout=60_000)  # filled by htmx polling
        wait_for(jobs[1], (JobState.FINISHED,), timeout=60)
    page.wait_for_selector(".summary .badge:has-text('Finished')")

    page.hover("#frame-grid i[data-n='3']")
    page.wait_for_function(IMAGE_LOADED, arg="#frame-tip img")
    page.click("#frame-grid i[data-n='3']")
    page.wait_for_function(IMAGE_LOADED, arg="#frame-dialog .preview")
    assert "Frame 3" in page.inner_text("#frame-dialog h2")
    assert "Frame 3: done" in page.inner_text("#grid-status")  # the frame shown, not frame 1
    page.click("#frame-dialog button:has-text('Close')")

    page.focus("#frame-grid")  # the grid works from the keyboard too
    page.keyboard.press("ArrowLeft")  # on from the clicked frame
    assert "Frame 2: done" in page.inner_text("#grid-status")
    page.keyboard.press("Enter")
    page.wait_for_selector("#frame-dialog[open] h2:has-text('Frame 2')")
    page.keyboard.press("Escape")

    page.click(".chunks-card tr:has-text('1-3') a:has-text('stdout')")
    page.wait_for_selector("#log-text:has-text('Saved:')")

    page.goto(f"/jobs/{jobs[0].pk}/outputs/")
    assert page.locator(".tile").count() == 6
    for number in range(1, 7):
        page.wait_for_function(IMAGE_LOADED, arg=f".tile-image[data-frame='{number}'] img")
    with page.expect_download() as download:
        page.click("a:has-text('Download all')")
    names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    assert sorted(names) == [f"shot_a_{n:04d}.png" for n in range(1, 7)]
    link = page.get_attribute(".tile a:has-text('Open')", "href")  # a PNG opens in the tab
    assert link and link.startswith("/storage/signed/")
    opened = page.request.get(link)
    assert opened.status == 200 and opened.headers["content-disposition"].startswith("inline")


def test_watch_a_running_job_read_its_live_log_and_cancel_it(
    open_page: Any,
    alice: Any,
    project: Any,
    fake_software: Any,
    cluster: Any,
    scene_url: str,
    settings: Any,
) -> None:
    settings.RENDER_TASK_MAX_ATTEMPTS = 1
    broken = submit(
        project,
        fake_software,
        cluster,
        scene_url,
        frames="1-2",
        nodes=1,
        parameters={"mode": "fail"},
    )
    job = submit(
        project,
        fake_software,
        cluster,
        scene_url,
        frames="1-40",
        nodes=2,
        parameters={"mode": "slow"},
    )
    page = open_page(alice)
    with render_worker_for(cluster, settings, prefix="web"):
        wait_for(broken, (JobState.FAILED,), timeout=60)
        page.goto(f"/jobs/{job.pk}/")
        page.wait_for_selector("#frame-grid i.r")  # a frame starts rendering
        page.click(".chunks-card tr:has-text('1-20') a:has-text('stdout')")
        page.wait_for_selector("#log-text:has-text('Fra:1')")  # the live tail from the DB
        assert "Live tail" in page.inner_text("#log-panel")

        page.goto("/")
        page.wait_for_selector("#running-panel a:has-text('shot_a')")
        page.wait_for_selector(".failures:has-text('License server unreachable')")
        page.wait_for_selector(".node-dot.n-busy")

        page.goto(f"/jobs/{job.pk}/")
        page.on("dialog", lambda dialog: dialog.accept())  # "Cancel job #…?"
        page.click("button:has-text('Cancel job')")
        page.wait_for_selector(".messages:has-text('Cancelled job')")
        assert page.locator("#frame-grid i.c").count() == 40
        assert wait_for(job, (JobState.CANCELLED,), timeout=60).state == JobState.CANCELLED
    assert not job.frame_set.exclude(state=FrameState.CANCELLED).exists()


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_a_real_blender_render_fills_the_grid_gallery_and_logs(
    open_page: Any,
    alice: Any,
    project: Any,
    blender_software: Any,
    fake_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    settings: Any,
) -> None:
    settings.RENDER_TASK_MAX_ATTEMPTS = 1
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=48)
    # A broken render queued first, so the dashboard has a failure (and its reason) to show.
    fake_scene = storage_root / "scenes" / "ball" / "broken.blend"
    fake_scene.write_bytes(b"not a scene")
    broken = submit(
        project,
        fake_software,
        cluster,
        storage_url + "scenes/ball/broken.blend",
        frames="1-2",
        nodes=1,
        parameters={"mode": "fail"},
    )
    job = submit(
        project,
        blender_software,
        cluster,
        storage_url + "scenes/ball/ball.blend",
        frames="1-48",
        chunk_size=4,  # twelve chunks on two worker threads: the grid fills over seconds
    )
    page = open_page(alice)
    page.goto(f"/jobs/{job.pk}/")
    with render_worker_for(cluster, settings, prefix="web"):
        page.wait_for_function(PART_DONE, timeout=120_000)  # seen live, mid-render
        page.locator("#frame-grid i.d").first.hover()
        page.wait_for_function(IMAGE_LOADED, arg="#frame-tip img")
        screenshot(page, "job-detail", full_page=True)
        wait_for(broken, (JobState.FAILED,), timeout=60)  # it was queued first
        dashboard = open_page(alice)
        dashboard.goto("/")
        dashboard.wait_for_selector(".failures:has-text('License server unreachable')")
        dashboard.set_viewport_size({"width": 1280, "height": 560})
        screenshot(dashboard, "dashboard", full_page=True)
        page.wait_for_function(ALL_DONE, timeout=120_000)
    job.refresh_from_db()
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 48

    page.goto(f"/jobs/{job.pk}/outputs/")
    for number in range(1, 49):
        page.wait_for_function(IMAGE_LOADED, arg=f".tile-image[data-frame='{number}'] img")
    screenshot(page, "outputs")
    page.click(".tile-image[data-frame='7']")
    page.wait_for_function(IMAGE_LOADED, arg="#frame-dialog .preview")
    assert page.evaluate("document.querySelector('#frame-dialog .preview').naturalWidth") == 64

    # With frames measured, the submit page estimates the next render from them.
    page.goto(f"/submit/?project={project.pk}&software={blender_software.pk}")
    page.click("#browser a:has-text('scenes/')")
    page.click("#browser a:has-text('ball/')")
    page.locator("#browser").get_by_label("ball.blend", exact=True).check()
    page.select_option("#id_cluster", str(cluster.pk))
    page.fill("#id_frames", "1-480")
    page.fill("#id_nodes", "2")
    page.wait_for_selector("#estimate:has-text('About')")
    assert "480 frames on 2 nodes" in page.inner_text("#estimate")
    screenshot(page, "submit", full_page=True)

    page.goto(f"/jobs/{job.pk}/chunks/0/logs/?log=stdout")
    page.wait_for_selector("#log-text:has-text('Saved:')")
    assert "From storage" in page.inner_text("#log-panel")
    screenshot(page, "logs")
