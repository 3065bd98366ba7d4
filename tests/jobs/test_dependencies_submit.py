"""A scene's missing files at submit: refused naming them, through the service, the page,
the API and the CLI, unless the user accepts them; ``submit_render --check``; local scenes
uploaded with exactly their files, each submission into a folder of its own."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from jobs import services
from jobs.models import RenderJob
from jobs.submission import MISSING_FILES
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]

GONE = "//tex/gone.png"


@pytest.fixture
def tree(storage_root: Path, project: Any) -> Path:
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    return build_tree(storage_root / "scenes")


def request(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> Any:
    return services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], frames="1-2", **kw
    )


def test_a_missing_texture_is_refused_naming_it_and_accepted_on_request(
    tree: Path, project: Any, blender_software: Any, cluster: Any, storage_url: str
) -> None:
    scene = storage_url + "scenes/shots/gone.blend"
    with pytest.raises(services.SubmissionError) as exc:
        services.submit_render(request(project, blender_software, cluster, scene))
    [error] = exc.value.error_dict["scenes"]
    assert error.code == MISSING_FILES
    assert error.message.startswith("gone.blend needs files that are not where it looks: ")
    assert f"{GONE} ({storage_url}scenes/shots/tex/gone.png): image, missing" in error.message
    assert not RenderJob.objects.exists()

    jobs = services.submit_render(
        request(project, blender_software, cluster, scene, allow_missing=True)
    )
    assert len(jobs) == 1
    assert any(GONE in w and "Rendering without them, as asked." in w for w in jobs.warnings)


def test_a_scene_with_every_file_there_is_submitted_without_a_word(
    tree: Path, project: Any, blender_software: Any, cluster: Any, storage_url: str
) -> None:
    scene = storage_url + "scenes/shots/all.blend"
    jobs = services.submit_render(request(project, blender_software, cluster, scene))
    assert not [w for w in jobs.warnings if "needs files" in w]


def test_the_page_refuses_then_offers_to_render_without_them(
    client: Any,
    bob: Any,
    tree: Path,
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_url: str,
) -> None:
    client.force_login(bob)
    data = {
        "project": project.pk,
        "software": blender_software.pk,
        "cluster": cluster.pk,
        "scenes": [storage_url + "scenes/shots/gone.blend"],
        "frames": "1-2",
        "priority": "0",
        "param_engine": "CYCLES",
        "param_format": "PNG",
    }
    first = client.get(f"/submit/?project={project.pk}").content.decode()
    assert 'name="allow_missing"' not in first
    refused = client.post("/submit/", data)
    text = refused.content.decode()
    assert refused.status_code == 200 and not RenderJob.objects.exists()
    assert GONE in text and "missing" in text
    assert 'name="allow_missing"' in text and "Render without the missing files" in text

    done = client.post("/submit/", {**data, "allow_missing": "on"}, follow=True)
    job = RenderJob.objects.get()
    assert done.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert GONE in done.content.decode()
    # The acceptance is kept with the job, naming the files, and shown on its page later.
    assert any(GONE in w and "as asked" in w for w in job.warnings)
    assert GONE in client.get(f"/jobs/{job.pk}/").content.decode()


def test_the_api_refuses_then_submits_with_allow_missing(
    bob: Any, tree: Path, project: Any, cluster: Any, storage_url: str
) -> None:
    api = APIClient()
    api.force_authenticate(bob)
    payload = {
        "project": project.name,
        "software": "blender",
        "cluster": cluster.name,
        "scenes": [storage_url + "scenes/shots/gone.blend"],
        "frames": "1-2",
    }
    refused = api.post("/api/jobs/", payload, format="json")
    assert refused.status_code == 400
    assert GONE in refused.json()["scenes"][0]
    accepted = api.post("/api/jobs/", {**payload, "allow_missing": True}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert any(GONE in w for w in accepted.json()["warnings"])


# --- the command --------------------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_check_lists_the_files_and_exits_non_zero_when_one_is_missing(
    tree: Path, project: Any, storage_url: str
) -> None:
    out, _ = run(
        "submit_render", "--project", "shots", "--check", "--scene", str(tree / "shots/all.blend")
    )
    assert "found        image          //../assets/tex/checker.png" in out
    assert "translated   image          P:/projects/win/tex/win.png" in out
    assert "image sequence //seq/frame_0001.png (3 files)" in out

    with pytest.raises(CommandError, match="1 file the scenes need is missing") as exc:
        run(
            "submit_render",
            "--project",
            "shots",
            "--check",
            "--scene",
            storage_url + "scenes/shots/gone.blend",
        )
    assert exc.value.returncode == 1
    assert not RenderJob.objects.exists()
    with pytest.raises(CommandError, match="outside this project's storage mappings"):
        run("submit_render", "--project", "shots", "--check", "--scene", "file:///etc/x.blend")


def test_a_local_scene_goes_up_with_exactly_its_files_into_a_folder_of_its_own(
    tree: Path, project: Any, cluster: Any, storage_root: Path, tmp_path: Path
) -> None:
    studio = tmp_path / "studio"
    shutil.copytree(tree, studio)
    args = ["submit_render", "--project", "shots", "--frames", "1"]
    run(*args, "--scene", str(studio / "shots/all.blend"))

    [first] = (storage_root / "scenes/uploads").iterdir()
    uploaded = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert uploaded == [
        "studio/assets/tex/checker.png",
        "studio/lib/lib.blend",
        "studio/lib/tex/lib.png",
        "studio/shots/all.blend",
        "studio/shots/seq/frame_0001.png",
        "studio/shots/seq/frame_0002.png",
        "studio/shots/seq/frame_0003.png",
        "studio/shots/tex/a.png",
    ]  # not notes.txt nor the .blend1; win.png and the UDIM tiles are in storage (translated)
    job = RenderJob.objects.get()
    assert job.scene_url.endswith(f"/uploads/{first.name}/studio/shots/all.blend")

    # Another folder of the same name: its own upload folder, the first job's files untouched.
    other = tmp_path / "elsewhere" / "studio"
    shutil.copytree(tree, other)
    (other / "shots/tex/a.png").write_bytes(b"changed")
    run(*args, "--scene", str(other / "shots/all.blend"))
    assert len(list((storage_root / "scenes/uploads").iterdir())) == 2
    assert (first / "studio/shots/tex/a.png").read_bytes() == (
        tree / "shots/tex/a.png"
    ).read_bytes()


def test_a_local_scene_missing_a_file_is_refused_before_uploading(
    tree: Path, project: Any, cluster: Any, storage_root: Path, tmp_path: Path
) -> None:
    studio = tmp_path / "studio"
    shutil.copytree(tree, studio)
    args = ["submit_render", "--project", "shots", "--frames", "1"]
    with pytest.raises(CommandError) as exc:
        run(*args, "--scene", str(studio / "shots/gone.blend"))
    assert GONE in str(exc.value) and "--allow-missing" in str(exc.value)
    assert not (storage_root / "scenes/uploads").exists()
    _, err = run(*args, "--allow-missing", "--scene", str(studio / "shots/gone.blend"))
    assert GONE in err and RenderJob.objects.count() == 1


# --- the submit page's panel and the API ---------------------------------------------------


def test_the_panel_lists_the_ticked_scenes_files_and_their_states(
    client: Any, bob: Any, charlie: Any, tree: Path, project: Any, storage_url: str
) -> None:
    client.force_login(bob)
    scenes = [storage_url + "scenes/shots/all.blend", storage_url + "scenes/shots/gone.blend"]
    page = client.get("/submit/files/", {"project": project.pk, "scenes": scenes})
    html = page.content.decode()
    assert page.status_code == 200
    assert "all.blend" in html and "gone.blend" in html
    assert "//../assets/tex/checker.png" in html and "absolute path translated by a mapping" in html
    assert "image sequence" in html and "(3 files)" in html
    assert "1 file it needs is missing or unreachable" in html and GONE in html

    outside = client.get(
        "/submit/files/", {"project": project.pk, "scenes": ["file:///etc/passwd"]}
    )
    assert "outside this project&#x27;s storage mappings" in outside.content.decode()

    client.force_login(charlie)  # not a member: the project is not found
    assert (
        client.get("/submit/files/", {"project": project.pk, "scenes": scenes}).status_code == 404
    )


def test_the_api_checks_scenes_for_members_only(
    bob: Any, charlie: Any, tree: Path, project: Any, storage_url: str
) -> None:
    api = APIClient()
    api.force_authenticate(bob)
    payload = {"project": "shots", "scenes": [storage_url + "scenes/shots/gone.blend"]}
    answer = api.post("/api/scenes/check/", payload, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["ok"] is False
    [scene] = body["scenes"]
    gone = next(d for d in scene["dependencies"] if d["path"] == GONE)
    assert (gone["state"], gone["location"]) == (
        "missing",
        storage_url + "scenes/shots/tex/gone.png",
    )

    ok = api.post(
        "/api/scenes/check/",
        {"project": "shots", "scenes": [storage_url + "scenes/shots/all.blend"]},
        format="json",
    )
    assert ok.json()["ok"] is True

    outside = api.post(
        "/api/scenes/check/", {"project": "shots", "scenes": ["file:///etc/passwd"]}, format="json"
    )
    assert outside.status_code == 400
    assert "outside this project's storage mappings" in outside.json()["scenes"][0]

    api.force_authenticate(charlie)
    assert api.post("/api/scenes/check/", payload, format="json").status_code == 404


# --- manage.py upload ---------------------------------------------------------------------


def test_upload_puts_a_scene_up_with_exactly_its_files(
    tree: Path, project: Any, storage_root: Path, storage_url: str, tmp_path: Path
) -> None:
    studio = tmp_path / "studio"
    shutil.copytree(tree, studio)
    out, _ = run("upload", str(studio / "shots/all.blend"), storage_url + "scenes/ep 2/")
    up = storage_root / "scenes/ep 2"
    names = sorted(p.relative_to(up).as_posix() for p in up.rglob("*") if p.is_file())
    assert names == [
        "assets/tex/checker.png",
        "lib/lib.blend",
        "lib/tex/lib.png",
        "shots/all.blend",
        "shots/seq/frame_0001.png",
        "shots/seq/frame_0002.png",
        "shots/seq/frame_0003.png",
        "shots/tex/a.png",
    ]
    assert "Uploaded 8 files" in out


@pytest.mark.parametrize(
    ("spelling", "replaced"),
    [
        ("scenes/shots/all.blend", "assets/tex/checker.png"),  # a file the scene needs
        ("scenes/shots/./all.blend", "shots/all.blend"),  # the scene, however its URL was
        ("scenes//shots/%61ll.blend", "shots/all.blend"),  # written at submit
    ],
)
def test_upload_never_overwrites_a_file_an_unfinished_job_renders_from(
    spelling: str,
    replaced: str,
    tree: Path,
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    tmp_path: Path,
) -> None:
    scene = storage_url + spelling
    [job] = services.submit_render(request(project, blender_software, cluster, scene))
    target = storage_root / "scenes" / replaced
    before = target.read_bytes()
    folder, name = replaced.rsplit("/", 1)
    changed = tmp_path / "new"
    changed.mkdir()
    (changed / name).write_bytes(b"new bytes")

    with pytest.raises(CommandError) as exc:
        run("upload", str(changed), f"{storage_url}scenes/{folder}/")
    assert f"{storage_url}scenes/{replaced} (job #{job.pk}, queued)" in str(exc.value)
    assert target.read_bytes() == before

    RenderJob.objects.filter(pk=job.pk).update(state="finished")
    run("upload", str(changed), f"{storage_url}scenes/{folder}/")
    assert target.read_bytes() == b"new bytes"
