"""A studio's first day, walked as a new user in real Chromium against a real render worker
and real Blender: a project lead without staff rights logs in, makes Blender software from
the template (with a typo in the program's name), starts a project, uploads a scene folder
through the page, submits a one-frame test, reads Blender's sandbox's own error on the job
page, fixes the software, retries from the page and opens the finished frame inline.

Set RENDERHUB_SCREENSHOTS=docs/screenshots to refresh the README's first-day pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from images.models import Software
from jobs.choices import JobState
from jobs.models import RenderJob
from projects.models import Project
from tests.conftest import build_demo_scene
from tests.workers import render_worker_for, wait_for

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALL_DONE = (
    "() => { const c = [...document.querySelectorAll('#frame-grid i')];"
    " return c.length > 0 && c.every(x => x.className[0] === 'd') }"
)


@pytest.fixture
def lead(django_user_model: Any) -> Any:
    """A project lead: may add software and projects; no staff flag, no admin."""
    user = django_user_model.objects.create_user("mia", "mia@example.com", "pw-mia-first-1")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_software", "change_software", "add_project"])
    )
    return user


def test_first_day(
    open_page: Any,
    lead: Any,
    image: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.PROJECTS_STORAGE_URL = storage_url + "projects/"
    settings.STORAGE_ALLOWED_PREFIXES = [settings.PROJECTS_STORAGE_URL]
    # A scene folder on the artist's disk: the scene and its texture in textures/.
    scene_dir = tmp_path / "spinning ball"
    build_demo_scene(scene_dir / "ball.blend", frames=3)
    assert (scene_dir / "textures" / "checker.png").is_file()

    # Log in on the pages' own login: no staff flag needed.
    page = open_page(None)
    page.goto("/")
    page.wait_for_url("**/login/**")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw-mia-first-1")
    page.click("input[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    assert page.locator("nav a:has-text('Admin')").count() == 0

    # Software from the Blender template, with the program's name mistyped.
    page.click("nav a:has-text('Software')")
    page.click("a:has-text('Blender') >> nth=0")
    page.wait_for_selector("h1:has-text('New software from')")
    assert page.input_value("[aria-label='Argument 1']") == "blender"
    assert "{engine}" in page.inner_text(".sw-variables")  # its parameters are variables
    page.select_option("#id_image", str(image.pk))
    page.fill("#id_name", "blender-studio")
    page.fill("[aria-label='Argument 1']", "blender-3.9")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Added blender-studio")
    software = Software.objects.get(name="blender-studio")
    assert software.command_template[0] == "blender-3.9"

    # A project of her own, then the scene folder uploaded into its scenes.
    page.goto("/")
    page.click("a:has-text('New project')")
    page.fill("#id_name", "first-day")
    page.select_option("#id_image", str(image.pk))
    page.click("button:has-text('Create project')")
    page.wait_for_selector("text=Project first-day created")
    project = Project.objects.get(name="first-day")
    page.click("#browser a:has-text('scenes/')")
    page.set_input_files("#browser input[webkitdirectory]", str(scene_dir))
    page.wait_for_selector("#browser .upload-list .summary:has-text('2 of 2 files uploaded.')")
    scenes = storage_root / "projects" / "first-day" / "scenes"
    assert (scenes / "spinning ball" / "ball.blend").read_bytes() == (
        scene_dir / "ball.blend"
    ).read_bytes()

    # A one-frame test: it fails, and the job page says what the sandbox said.
    page.goto(f"/submit/?project={project.pk}&software={software.pk}")
    page.click("#browser a:has-text('scenes/')")
    page.click("#browser a:has-text('spinning ball/')")
    page.locator("#browser").get_by_label("ball.blend", exact=True).check()
    assert page.input_value("#id_cluster") == str(cluster.pk)  # the only cluster, chosen
    page.fill("#id_frames", "1")
    page.fill("#id_nodes", "1")
    with render_worker_for(cluster, settings, prefix="day"):
        page.click("button:has-text('Submit render')")
        page.wait_for_url("**/jobs/*/")
        job = RenderJob.objects.get(project=project)
        assert wait_for(job, timeout=120).state == JobState.FAILED
        page.reload()
        failure = page.inner_text(".alert:has-text('Failure')")
        assert "blender-3.9" in failure, failure  # the renderer's own words, not a node note
        assert "Every online node" not in failure.splitlines()[0]
        screenshot(page, "first-day-failure")

        # Fix the program's name, then retry from the job page.
        page.goto("/software/")
        page.click(f"a[href='/software/{software.pk}/']")
        page.fill("[aria-label='Argument 1']", "blender")
        page.click("button:has-text('Save')")
        page.wait_for_selector("text=Saved blender-studio")
        page.goto(f"/jobs/{job.pk}/")
        page.click("button:has-text('Retry failed')")
        page.wait_for_function(ALL_DONE, timeout=120_000)
    job.refresh_from_db()
    assert job.state == JobState.FINISHED and job.frames_done == 1, job.failure_reason

    # The finished frame opens in the browser (inline), not as a download.
    page.goto(f"/jobs/{job.pk}/outputs/")
    link = page.locator("a[href*='/storage/signed/']").first.get_attribute("href")
    assert link
    response = page.goto(link)
    assert response is not None and response.ok
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")
