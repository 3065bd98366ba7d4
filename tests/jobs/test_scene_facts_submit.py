"""Scene facts checked at submit, through the service, the submit page and the API, on .blend
files real Blender saved (tests/jobs/scene_files.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from clusters.choices import Backend
from clusters.models import Cluster
from images.models import Software
from jobs import scene_checks, services
from jobs.models import RenderJob
from jobs.scene_checks import OUTSIDE_RANGE
from renderhub.blend import facts as facts_module
from renderhub.blend.blender import BlenderBuild

from .scene_files import blender_installed, build_scene_files

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not blender_installed(), reason="blender is not installed"),
]

WITHOUT_OIDN = BlenderBuild(path="/usr/bin/blender", version="3.4.1", openimagedenoise=False)
WITH_OIDN = BlenderBuild(path="/opt/blender/blender", version="4.2.0", openimagedenoise=True)


@pytest.fixture(scope="session")
def blends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_scene_files(tmp_path_factory.mktemp("blends"))


@pytest.fixture
def scenes(blends: dict[str, Path], storage_root: Path, storage_url: str) -> dict[str, str]:
    """Each built scene copied into the project's mapped folder, by name -> its URL."""
    folder = storage_root / "scenes" / "Épisode 1"
    folder.mkdir(parents=True)
    urls = {}
    for name, path in blends.items():
        shutil.copy(path, folder / path.name)
        urls[name] = f"{storage_url}scenes/%C3%89pisode%201/{path.name}"
    return urls


@pytest.fixture
def oidn(monkeypatch: pytest.MonkeyPatch) -> dict[str, BlenderBuild | None]:
    """The Blender build the checks see (this machine's is asked in test_scene_facts_reader)."""
    seen: dict[str, BlenderBuild | None] = {"build": WITHOUT_OIDN}
    monkeypatch.setattr(scene_checks, "blender_build", lambda executable: seen["build"])
    return seen


@pytest.fixture
def scene_software(image: Any) -> Software:
    """Blender with the scene to render as a parameter, as the catalogue's template has it."""
    return Software.objects.create(
        image=image,
        name="blender-scene",
        scene_suffixes=".blend",
        command_template=[
            *["blender", "-b", "{scene}", "-S", "{blender_scene}", "-E", "{engine}"],
            *["-o", "{output_pattern}", "-f", "{frame_list}"],
        ],
        parameters=[
            {"name": "blender_scene", "type": "string", "required": True},
            {"name": "engine", "type": "choice", "choices": ["CYCLES", "BLENDER_EEVEE"]},
        ],
    )


def submit(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> Any:
    request = services.RenderRequest(
        project=project,
        software=software,
        cluster=cluster,
        scenes=[scene],
        **{"frames": "1-2", **kw},
    )
    return services.submit_render(request)


def refusal(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> Any:
    with pytest.raises(services.SubmissionError) as exc:
        submit(project, software, cluster, scene, **kw)
    assert not RenderJob.objects.exists()
    return exc.value


# --- the service --------------------------------------------------------------------------


def test_frames_wholly_outside_the_range_are_refused_naming_it(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], oidn: Any
) -> None:
    exc = refusal(project, blender_software, cluster, scenes["range"], frames="300-302")

    [error] = exc.error_dict["frames"]
    assert error.code == OUTSIDE_RANGE
    assert error.message.startswith(
        "range.blend: scene 'Scene': all frames 300-302 outside its frame range 1-250. "
        "Choose frames in the range, or render them anyway"
    )


def test_forced_they_are_submitted_with_a_warning(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], oidn: Any
) -> None:
    oidn["build"] = WITH_OIDN
    jobs = submit(project, blender_software, cluster, scenes["range"], frames="300-302", force=True)

    assert [job.frame_count for job in jobs] == [3]
    assert jobs.warnings == [
        "range.blend: scene 'Scene': all frames 300-302 outside its frame range 1-250; "
        "Blender renders them anyway."
    ]


def test_frames_partly_outside_are_a_warning(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], oidn: Any
) -> None:
    oidn["build"] = None
    jobs = submit(project, blender_software, cluster, scenes["range"], frames="1-10x5,249-252")

    assert jobs[0].frame_count == 6
    assert jobs.warnings == [
        "range.blend: scene 'Scene': frames 251-252 outside its frame range 1-250; "
        "Blender renders them anyway."
    ]


@pytest.mark.parametrize("name", ["two_scenes", "compressed"])
def test_without_a_scene_parameter_the_files_current_scene_is_checked(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], name: str
) -> None:
    exc = refusal(project, blender_software, cluster, scenes[name], frames="1-3")

    assert (
        f"{name}.blend: scene 'Shot 02 ünï': all frames 1-3 outside its frame range 100-120"
        in (exc.message_dict["frames"][0])
    )
    assert submit(project, blender_software, cluster, scenes[name], frames="100-101")


def test_an_unknown_scene_name_is_refused_naming_the_files_scenes(
    project: Any, scene_software: Any, cluster: Any, scenes: dict[str, str]
) -> None:
    exc = refusal(
        project,
        scene_software,
        cluster,
        scenes["two_scenes"],
        parameters={"blender_scene": "Shot01"},
    )

    assert exc.message_dict == {
        "parameters": [
            "two_scenes.blend has no scene 'Shot01' (blender_scene); its scenes are: 'Scene', "
            "'Shot 02 ünï', \"Shot 03 'q'\". Blender would render its default scene instead."
        ]
    }


def test_the_named_scenes_range_is_the_one_checked(
    project: Any, scene_software: Any, cluster: Any, scenes: dict[str, str]
) -> None:
    url = scenes["two_scenes"]
    first = {"blender_scene": "Scene"}
    exc = refusal(project, scene_software, cluster, url, frames="100", parameters=first)
    assert "scene 'Scene': all frames 100 outside its frame range 1-3" in str(exc)

    [job] = submit(project, scene_software, cluster, url, frames="1-3", parameters=first)
    assert job.parameters["blender_scene"] == "Scene"


def test_scene_errors_come_with_the_requests_other_errors(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str]
) -> None:
    exc = refusal(project, blender_software, cluster, scenes["range"], frames="900", nodes=99)
    assert set(exc.message_dict) == {"frames", "nodes"}


def test_denoising_on_warns_when_this_machines_blender_lacks_openimagedenoise(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], oidn: Any
) -> None:
    jobs = submit(project, blender_software, cluster, scenes["default_cycles"])

    assert jobs.warnings == [
        "default_cycles.blend: scene 'Scene' has Cycles denoising on, but this machine's "
        "Blender 3.4.1 is built without OpenImageDenoise: its frames would fail with “Build "
        "without OpenImageDenoiser”. Turn Denoise off in the scene's render settings (and its "
        "view layers'), or render on nodes whose Blender has it."
    ]


@pytest.mark.parametrize(
    ("scene", "build", "engine", "backend"),
    [
        ("layer_off", WITHOUT_OIDN, "CYCLES", Backend.CELERY),  # its view layer does not denoise
        ("default_cycles", WITH_OIDN, "CYCLES", Backend.CELERY),
        ("default_cycles", None, "CYCLES", Backend.CELERY),  # no Blender here to ask
        ("default_cycles", WITHOUT_OIDN, "BLENDER_EEVEE", Backend.CELERY),  # -E overrides it
        ("default_cycles", WITHOUT_OIDN, "CYCLES", Backend.BATCHCOMPUTE),  # its image's Blender
    ],
)
def test_no_denoising_warning_when_it_cannot_fail_here(
    project: Any,
    blender_software: Any,
    cluster: Any,
    scenes: dict[str, str],
    oidn: Any,
    scene: str,
    build: BlenderBuild | None,
    engine: str,
    backend: str,
) -> None:
    oidn["build"] = build
    Cluster.objects.filter(pk=cluster.pk).update(backend=backend)
    cluster.refresh_from_db()
    request = services.RenderRequest(
        project=project,
        software=blender_software,
        cluster=cluster,
        scenes=[scenes[scene]],
        frames="1",
        parameters={"engine": engine},
    )
    checked = services.validate_render(request, None)
    assert checked.warnings == []


def test_a_scene_without_a_camera_is_a_warning(
    project: Any, blender_software: Any, cluster: Any, scenes: dict[str, str], oidn: Any
) -> None:
    jobs = submit(project, blender_software, cluster, scenes["nocam"])
    assert jobs.warnings == [
        "nocam.blend: scene 'Scene' has no camera; Blender renders nothing without one "
        "(“Error: Cannot render, no camera”) unless markers bind cameras."
    ]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"PK\x03\x04" * 1000, "not a .blend file (File is not a blend file)"),
        (b"BLENDER-v304" * 10, "120 bytes is too small for a saved .blend file"),
    ],
)
def test_an_unreadable_scene_is_submitted_with_a_warning_saying_what_went_unchecked(
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    content: bytes,
    why: str,
) -> None:
    (storage_root / "scenes").mkdir()
    (storage_root / "scenes" / "renamed zip.blend").write_bytes(content)

    jobs = submit(project, blender_software, cluster, storage_url + "scenes/renamed%20zip.blend")

    assert jobs.warnings == [
        f"renamed zip.blend: its scene facts could not be read ({why}); its frame range and "
        "scenes were not checked."
    ]


def test_the_scene_is_read_by_one_child_process_for_both_checks(
    project: Any,
    blender_software: Any,
    cluster: Any,
    scenes: dict[str, str],
    oidn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The frame-range check and the dependency check both need the scene: one child
    # process (Python, blender-asset-tracer, the file opened once) serves both.
    readers: list[list[str]] = []
    run = subprocess.run

    def counted(argv: list[str], **kw: Any) -> Any:
        readers.append([Path(a).name for a in argv])
        return run(argv, **kw)

    monkeypatch.setattr(facts_module.subprocess, "run", counted)

    refused = refusal(project, blender_software, cluster, scenes["range"], frames="300-302")
    jobs = submit(project, blender_software, cluster, scenes["nocam"])

    assert refused.error_dict["frames"][0].code == OUTSIDE_RANGE  # the facts were read
    assert jobs.warnings and "has no camera" in jobs.warnings[0]
    assert [r[3:5] for r in readers] == [["deps.py", "range.blend"], ["deps.py", "nocam.blend"]]


# --- the submit page ----------------------------------------------------------------------


def page_data(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> dict[str, Any]:
    return {
        "project": project.pk,
        "software": software.pk,
        "cluster": cluster.pk,
        "scenes": [scene],
        "frames": "300-302",
        "priority": "0",
        "param_engine": "CYCLES",
        "param_format": "PNG",
        **kw,
    }


def test_the_page_refuses_then_offers_to_render_anyway_and_the_job_page_warns(
    client: Any,
    bob: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    scenes: dict[str, str],
    oidn: Any,
) -> None:
    client.force_login(bob)
    first = client.get(f"/submit/?project={project.pk}").content.decode()
    assert 'name="force"' not in first, "offered only once the range refused the frames"

    data = page_data(project, blender_software, cluster, scenes["range"])
    refused = client.post("/submit/", data)
    text = refused.content.decode()
    assert refused.status_code == 200 and not RenderJob.objects.exists()
    assert "all frames 300-302 outside its frame range 1-250" in text
    assert 'name="force"' in text and "Render frames outside the scene&#x27;s range" in text

    done = client.post("/submit/", {**data, "force": "on"}, follow=True)
    job = RenderJob.objects.get()
    assert done.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    shown = done.content.decode()
    assert "all frames 300-302 outside its frame range 1-250; Blender renders them anyway." in shown
    assert "is built without OpenImageDenoise" in shown  # range.blend denoises


def test_the_page_preselects_the_only_active_cluster(
    client: Any, bob: Any, project: Any, cluster: Any, image: Any
) -> None:
    client.force_login(bob)

    def selected() -> Any:
        return client.get(f"/submit/?project={project.pk}").context["form"]["cluster"].initial

    assert selected() == cluster.pk
    other = Cluster.objects.create(name="farm", image=image, desired_nodes=1, max_nodes=2)
    assert selected() is None, "two clusters: the user chooses"
    Cluster.objects.filter(pk=other.pk).update(name="local")
    assert selected() == other.pk, "or the one named local, as the command line picks"
    page = client.get(f"/submit/?project={project.pk}").content.decode()
    assert f'<option value="{other.pk}" selected>' in page


# --- the API ------------------------------------------------------------------------------


def test_the_api_refuses_then_submits_with_force_and_returns_the_warnings(
    bob: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    scenes: dict[str, str],
    oidn: Any,
) -> None:
    api = APIClient()
    api.force_authenticate(bob)
    payload = {
        "project": project.name,
        "software": "blender",
        "cluster": cluster.name,
        "scenes": [scenes["range"]],
        "frames": "300-302",
    }

    refused = api.post("/api/jobs/", payload, format="json")
    assert refused.status_code == 400
    assert "all frames 300-302 outside its frame range 1-250" in refused.json()["frames"][0]

    oidn["build"] = WITH_OIDN
    forced = api.post("/api/jobs/", {**payload, "force": True}, format="json")
    assert forced.status_code == 201, forced.content
    assert forced.json()["warnings"] == [
        "range.blend: scene 'Scene': all frames 300-302 outside its frame range 1-250; "
        "Blender renders them anyway."
    ]
