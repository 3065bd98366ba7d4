"""Issue 11, findings 1, 2 and 5: what a render does with a hostile scene or renderer.

Each test submits a real job through the submit service and renders it on a real Celery
render worker, real node agent and real bubblewrap sandbox; the Blender tests use real
Blender with scenes built in code (``hostile_scene.py``). Then it looks at what left the
job (everything under the job's output prefix in storage) and at the rest of the storage.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from PIL import Image

from images.models import Software
from jobs import services
from jobs.choices import FrameState, JobState
from projects.models import Project, StorageMapping
from renderhub import storage
from renderhub.agent import sandbox
from tests.conftest import BLENDER
from tests.workers import render_worker_for, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sandbox.problem("bwrap") is not None, reason="bubblewrap unusable"),
]

HERE = Path(__file__).resolve().parent
HOSTILE_SCENE = HERE / "hostile_scene.py"
PROBE = HERE / "probe_renderer.py"
PLAIN_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "USER", "LOGNAME", "TZ", "PWD"}
# Blender's Python, for the built-in Blender's renders: write no bytecode, and read it from
# the machine's read-only folder once it is built (renderhub/agent/bytecode.py).
PLAIN_ENV |= {"PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"}
SECRET_ENV = {
    "DATABASE_URL": "postgres://farm:db-password-5f1c@db.internal/renderhub",
    "OSS_ACCESS_KEY_SECRET": "oss-secret-77c2a9",
    "BATCHCOMPUTE_ACCESS_KEY_SECRET": "bcs-secret-31e0d4",
    "DJANGO_SECRET_KEY": "django-key-9b8e1f",
    "WEBHOOK_ENCRYPTION_KEYS": "webhook-key-0c4d2e",
}


@pytest.fixture
def worker(cluster: Any, settings: Any) -> Iterator[Any]:
    with render_worker_for(cluster, settings, prefix="sec") as running:
        yield running


@pytest.fixture
def secret_file() -> Iterator[tuple[Path, str]]:
    """A secret at a short path (Blender truncates object names to 63 bytes)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="rhs-", dir="/tmp"))
    token = f"TOKEN-{secrets.token_hex(8)}"
    (folder / "secret_key").write_text(token)
    yield folder / "secret_key", token
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def other_project(image: Any, storage_url: str, storage_root: Path) -> Project:
    """Another studio's project on the same storage, with a finished frame."""
    other = Project.objects.create(
        name="other", image=image, output_prefix=storage_url + "other/output/"
    )
    StorageMapping.objects.create(
        project=other, source=storage_url + "other/scenes/", destination="/mnt/other/"
    )
    frame = storage_root / "other" / "output" / "1-their_shot" / "their_shot_0001.png"
    frame.parent.mkdir(parents=True)
    Image.new("RGB", (32, 24), (0, 255, 0)).save(frame)  # pure green: easy to recognise
    return other


def submit(project: Any, software: Any, cluster: Any, scene_url: str, **kw: Any) -> Any:
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=[scene_url],
            frames=kw.pop("frames", "1-2"),
            nodes=1,
            **kw,
        )
    )
    return job


def stored_under(url: str) -> dict[str, bytes]:
    backend, prefix = storage.resolve(url)
    return {entry.key: backend.read(entry.key) for entry in backend.walk(prefix)}


def hostile_scene(storage_root: Path, name: str, attack: str, arg: str) -> str:
    path = storage_root / "scenes" / f"{name}.blend"
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [BLENDER or "blender", "-b", "--factory-startup", "--python", str(HOSTILE_SCENE)]
    subprocess.run([*argv, "--", str(path), attack, arg], check=True, capture_output=True)
    return f"{django_settings.STORAGE_URL}scenes/{name}.blend"


# --- finding 1: forged output lines ---------------------------------------------------------


@pytest.mark.blender
@pytest.mark.parametrize("kind", ["bwrap", "none"])
def test_a_forged_saved_line_uploads_nothing_but_frames(
    kind: str,
    settings: Any,
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    secret_file: tuple[Path, str],
    worker: Any,
) -> None:
    """An object named ``X\\nSaved: '<secret>'`` made Blender print a forged output line;
    the agent uploaded the secret into the job's outputs. Now outputs are the files in the
    chunk's output folder named like its frames, whatever Blender prints (sandbox or not)."""
    settings.RENDER_SANDBOX = kind
    secret, token = secret_file
    scene = hostile_scene(storage_root, "forged", "forged-saved", str(secret))
    job = wait_for(submit(project, blender_software, cluster, scene))

    assert job.state == JobState.FINISHED, job.failure_reason
    stdout = b"".join(v for k, v in stored_under(job.output_url).items() if k.endswith("out.log"))
    assert f"Saved: '{secret}'".encode() in stdout  # the attack did reach the parser
    stored = stored_under(job.output_url)
    assert not [key for key, data in stored.items() if token.encode() in data]
    outputs = sorted(k.rsplit("/", 1)[1] for k in stored if "/_" not in k)
    assert outputs == ["forged_0001.png", "forged_0002.png"]
    assert secret.read_text() == token  # and it was not moved away either


# --- finding 2: secrets in the renderer's environment ---------------------------------------


def probe_software(image: Any, reads: list[str], writes: list[str], port: int, net: bool) -> Any:
    return Software.objects.create(
        image=image,
        name=f"probe{secrets.token_hex(3)}",
        scene_suffixes=".blend",
        command_template=[
            sys.executable,
            str(PROBE),
            "{output_pattern}",
            "{frames}",
            ":".join(reads),
            ":".join(writes),
            str(port),
        ],
        progress_parser="blender",
        network=net,
    )


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback that a sandboxed renderer must not reach."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    yield server.getsockname()[1]
    server.close()


def probe_report(job: Any) -> dict[str, Any]:
    """What the probe found, from the text chunk of the frame it rendered."""
    import io

    stored = stored_under(job.output_url)
    [frame] = [v for k, v in stored.items() if k.endswith("_0001.png")]
    return json.loads(Image.open(io.BytesIO(frame)).text["probe"])


def test_a_sandboxed_renderer_sees_no_secret_no_host_file_and_no_network(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    image: Any,
    project: Any,
    cluster: Any,
    scene_url: str,
    storage_root: Path,
    other_project: Project,
    listener: int,
    worker: Any,
) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    key_file = Path(django_settings.VAR_DIR) / "secret_key"
    key_file.write_text("the-worker-secret-key")  # as settings.py keeps it in var/
    their_frame = storage_root / "other" / "output" / "1-their_shot" / "their_shot_0001.png"
    reads = [str(key_file), str(their_frame), "/etc/shadow"]
    writes = [
        str(storage_root),
        str(storage_root / "other" / "output"),
        str(storage_root / "scenes"),
    ]
    software = probe_software(image, reads, writes, listener, net=False)

    job = wait_for(submit(project, software, cluster, scene_url))
    assert job.state == JobState.FINISHED, job.failure_reason
    report = probe_report(job)

    seen = json.dumps(report)
    for value in [*SECRET_ENV.values(), "the-worker-secret-key"]:
        assert value not in seen
    assert set(report["env"]) <= PLAIN_ENV
    assert report["reads"][str(key_file)].startswith("refused")
    assert report["reads"][str(their_frame)].startswith("refused")
    assert report["reads"]["/etc/shadow"].startswith("refused")
    writes_seen = report["writes"]
    assert writes_seen[str(storage_root / "other" / "output")].startswith("refused")
    # Not even there: the node stages the scene and its files alone, not the mapping
    # (issue 14); the staged folder itself is read-only.
    assert writes_seen[str(storage_root / "scenes")] == "refused: No such file or directory"
    # The storage root may appear inside the sandbox as an empty folder on its private /tmp
    # (these tests keep storage under /tmp): whatever the probe wrote, none reached the host.
    assert not list(storage_root.rglob("planted-by-probe.txt"))
    assert report["connect"].startswith("refused")
    assert report["uid"] == sandbox.SANDBOX_UID


def test_software_with_network_access_reaches_the_network(
    image: Any, project: Any, cluster: Any, scene_url: str, listener: int, worker: Any
) -> None:
    """The switch works both ways: a licence server is reachable when the Software says so."""
    software = probe_software(image, [], [], listener, net=True)
    job = wait_for(submit(project, software, cluster, scene_url))
    assert job.state == JobState.FINISHED, job.failure_reason
    assert probe_report(job)["connect"] == "CONNECTED"


def test_without_the_sandbox_the_environment_is_still_allow_listed(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    image: Any,
    project: Any,
    cluster: Any,
    scene_url: str,
    worker: Any,
) -> None:
    settings.RENDER_SANDBOX = "none"
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    software = probe_software(image, [], [], 0, net=False)
    job = wait_for(submit(project, software, cluster, scene_url))
    assert job.state == JobState.FINISHED, job.failure_reason
    report = probe_report(job)
    assert set(report["env"]) <= PLAIN_ENV
    # Its parent is the node agent: it got an allow-listed environment from the worker too.
    assert report["parent_environ"].startswith("READ:")
    assert "PYTHONPATH=" in report["parent_environ"]
    for value in SECRET_ENV.values():
        assert value not in json.dumps([report["env"], report["parent_environ"]])


# --- finding 5: renderers write anywhere, read anything ---------------------------------------


@pytest.mark.blender
def test_a_file_output_node_cannot_write_outside_the_job(
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    other_project: Project,
    worker: Any,
) -> None:
    """A compositor File Output node aimed at another project's output folder wrote there
    with the shipped Blender command; in the sandbox that folder does not exist."""
    target = storage_root / "other" / "output" / "1-their_shot"
    before = sorted(p.name for p in target.iterdir())
    scene = hostile_scene(storage_root, "spill", "file-output", str(target) + "/")
    job = wait_for(submit(project, blender_software, cluster, scene))

    assert sorted(p.name for p in target.iterdir()) == before
    assert job.state == JobState.FINISHED, job.failure_reason  # its own frames still render
    assert job.frames_done == 2
    nothing_new = [p for p in storage_root.rglob("*") if p.is_file() and "spill" not in str(p)]
    assert all("0001" not in p.name or "their_shot" in p.name for p in nothing_new)


@pytest.mark.blender
def test_a_texture_cannot_read_another_projects_frame(
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    other_project: Project,
    worker: Any,
) -> None:
    """A plane textured with another project's (pure green) frame by absolute path: in the
    sandbox the file is not there, so Blender paints its missing-texture magenta."""
    their_frame = storage_root / "other" / "output" / "1-their_shot" / "their_shot_0001.png"
    scene = hostile_scene(storage_root, "peek", "texture", str(their_frame))
    # The submit check names it as outside the project (issue 14); accepted anyway, the
    # sandbox is what keeps it out.
    with pytest.raises(services.SubmissionError, match="outside the project's mappings"):
        submit(project, blender_software, cluster, scene, frames="1")
    job = wait_for(
        submit(project, blender_software, cluster, scene, frames="1", allow_missing=True)
    )
    assert job.state == JobState.FINISHED, job.failure_reason
    frame = job.frame_set.get(number=1)
    assert frame.state == FrameState.DONE
    backend, key = storage.resolve(frame.output_url)
    local = backend.local_path(key)
    assert local is not None
    red, green, blue = Image.open(local).convert("RGB").getpixel((16, 12))[:3]
    assert green < 100 < min(red, blue), (red, green, blue)  # magenta, not their green
