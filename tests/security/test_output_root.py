"""A project's node temp output dir is where the local worker's renderers write.

Eve is staff with the project permissions (not a superuser) and a member of "shots":
only superusers choose that folder. Pointed into the local storage, a renderer would
write among another team's files; into the work folders, beside other chunks' logs. The
admin form refuses such folders even to superusers, and a project that holds one anyway
(saved before the rule, or settings changed since) fails its chunks with the reason
before any renderer starts, writing nothing there. On a shared /tmp, a folder another
user made first (or a link planted where a job's folder goes) would let them choose
where frames go: refused as well.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from images.choices import Platform
from jobs.choices import JobState
from projects.models import Project
from tests.jobs.conftest import submit_one
from tests.security.test_mapping_editors import change_form
from tests.workers import render_worker_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NOBODY = 65534


@pytest.fixture
def eve(client: Any, django_user_model: Any, project: Project) -> Any:
    user = django_user_model.objects.create_user("eve", password="pw-eve-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="projects"))
    project.members.add(user)
    client.force_login(user)
    return user


@pytest.fixture
def their_files(storage_root: Path) -> Path:
    """Another team's output folder in the local storage, with a frame in it."""
    folder = storage_root / "projects" / "other" / "out"
    folder.mkdir(parents=True)
    (folder / "final_0001.png").write_bytes(b"their frame")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def save_form(client: Any, project: Project, node_output_dir: str) -> Any:
    url = f"/admin/projects/project/{project.pk}/change/"
    return client.post(url, change_form(project, node_output_dir=node_output_dir))


def test_staff_cannot_choose_where_renderers_write(
    client: Any, eve: Any, project: Project, settings: Any
) -> None:
    for folder in ("/tmp/elsewhere/", f"{settings.RENDER_WORK_DIR}/output/shots/"):
        response = save_form(client, project, folder)
        assert response.status_code == 200, folder  # the form again, with the error
        assert "can only be set by a superuser" in html.unescape(response.content.decode())
        project.refresh_from_db()
        assert project.node_output_dir == "/tmp/renderhub/output/"
    assert save_form(client, project, project.node_output_dir).status_code == 302


def test_staff_set_windows_paths(client: Any, eve: Any, project: Project) -> None:
    """A drive on Windows nodes names no folder here: that stays the project's staff's."""
    project.image.platform = Platform.WINDOWS
    project.image.save()
    project.mappings.all().delete()  # Linux paths
    project.node_output_dir = "D:\\renderhub\\"
    project.save()
    assert save_form(client, project, "E:\\frames\\").status_code == 302
    project.refresh_from_db()
    assert project.node_output_dir == "E:\\frames\\"


def test_not_even_a_superuser_puts_outputs_among_renderhubs_files(
    client: Any, alice: Any, project: Project, their_files: Path, settings: Any, tmp_path: Path
) -> None:
    client.force_login(alice)
    work = Path(settings.RENDER_WORK_DIR)
    (tmp_path / "out").symlink_to(their_files)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for folder, place in [
        (f"{their_files}/", "the local storage"),
        (f"{tmp_path}/out/", "the local storage"),  # a link to it is the same
        (f"{settings.LOCAL_STORAGE_ROOT}/", "the local storage"),
        (f"{work}/", "the render work folder"),
        (f"{work}/job-1/", "the render work folder"),
        (f"{settings.WORKFLOW_WORK_DIR}/", "the workflow work folder"),
        (f"{settings.AUTO_DOWNLOAD_DIR}/other/", "the downloads folder"),
        (f"{settings.STATIC_ROOT}/", "static files"),
        (f"{settings.VAR_DIR}/", "var folder"),
        (f"{tmp_path}/loop/", "cannot be followed"),  # a link to itself: no error page
        ("relative/out/", "absolute path"),
    ]:
        response = save_form(client, project, folder)
        assert response.status_code == 200, folder
        assert place in html.unescape(response.content.decode()), folder
        project.refresh_from_db()
        assert project.node_output_dir == "/tmp/renderhub/output/"

    response = save_form(client, project, f"{work}/output/shots/")
    assert response.status_code == 302  # the work folder's own output folder is for this
    project.refresh_from_db()
    assert project.node_output_dir == f"{work}/output/shots/"


@pytest.fixture
def render_with(
    project: Project, fake_software: Any, cluster: Any, scene_url: str, settings: Any
) -> Callable[..., Any]:
    """Render a job of "shots" with its node temp output dir stored as ``root`` (as a
    project saved before the rule would hold it); ``plant(job)`` runs before the worker."""

    def render(root: str, plant: Callable[[Any], object] = lambda job: None) -> Any:
        Project.objects.filter(pk=project.pk).update(node_output_dir=root)
        project.refresh_from_db()
        job = submit_one(project, fake_software, cluster, scene_url, frames="1-2", chunk_size=2)
        plant(job)
        with render_worker_for(cluster, settings, prefix="out"):
            return wait_for(job)

    return render


def assert_refused_before_rendering(job: Any, words: str, *, machine: bool = False) -> None:
    """Failed with the reason, no frame rendered. A project's setting fails alike on every
    node: one attempt. This machine's folders may be fine on another worker: the chunk is
    retried, then fails with the reason."""
    assert job.state == JobState.FAILED
    [task] = job.tasks.all()
    assert words in task.failure_reason, task.failure_reason
    assert task.attempts > 1 if machine else task.attempts == 1
    assert not job.frame_set.filter(state="done").exists()


def test_a_stored_output_dir_in_another_projects_storage_writes_nothing_there(
    render_with: Callable[..., Any], their_files: Path
) -> None:
    before = listing(their_files)
    job = render_with(f"{their_files}/")
    assert_refused_before_rendering(job, "the local storage")
    assert listing(their_files) == before


def test_a_link_planted_where_the_jobs_folder_goes_is_not_followed(
    render_with: Callable[..., Any], tmp_path: Path
) -> None:
    root, victim = tmp_path / "out", tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    # Before any worker takes the chunk.
    job = render_with(f"{root}/", lambda job: (root / f"job-{job.pk}").symlink_to(victim))
    assert_refused_before_rendering(job, "is a link or a file", machine=True)
    assert listing(victim) == []


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_an_output_dir_in_another_users_folder_is_refused(
    render_with: Callable[..., Any], tmp_path: Path
) -> None:
    """Like /tmp/renderhub made first by someone else on a shared machine: its owner
    could swap ``output`` for a link at any time, so RenderHub does not write there."""
    theirs = tmp_path / "renderhub"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, NOBODY, NOBODY)
    job = render_with(f"{theirs}/output/")
    assert_refused_before_rendering(job, "belongs to another user", machine=True)
    assert listing(theirs) == []
