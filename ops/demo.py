"""The demo set-up behind ``make demo``: idempotent, so running it twice changes nothing."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from clusters.choices import Backend
from clusters.models import Cluster
from images.models import ComputeImage, Software
from projects.models import Project, StorageMapping
from renderhub import storage

log = logging.getLogger(__name__)

SCENE_SCRIPT = Path(settings.BASE_DIR) / "jobs" / "blender" / "demo_scene.py"
SCENE_FOLDER = "demo/scenes/spinning-ball/"
SCENE_NAME = "spinning_ball.blend"


class DemoError(Exception):
    pass


@dataclass
class Demo:
    project: Project
    software: Software
    cluster: Cluster
    scene_url: str


def storage_base() -> str:
    return (
        settings.STORAGE_URL if settings.STORAGE_URL.endswith("/") else settings.STORAGE_URL + "/"
    )


@transaction.atomic
def ensure_records() -> tuple[Project, Software, Cluster]:
    """The demo image's Blender, a project ``demo`` and a local cluster ``local``."""
    image = ComputeImage.objects.get(name="local-linux")  # created by a migration
    software = image.software.get(name="blender")
    base = storage_base()
    project, _ = Project.objects.get_or_create(
        name="demo",
        defaults={
            "image": image,
            "output_prefix": storage.join(base, "demo/output/"),
            "description": "The demo project made by `make demo`.",
            "node_output_dir": str(Path(settings.RENDER_WORK_DIR) / "output") + "/",
        },
    )
    StorageMapping.objects.get_or_create(
        project=project,
        source=storage.join(base, "demo/scenes/"),
        defaults={"destination": "/mnt/demo/scenes/"},
    )
    cluster, _ = Cluster.objects.get_or_create(
        name="local",
        defaults={"backend": Backend.CELERY, "image": image, "desired_nodes": 2, "max_nodes": 8},
    )
    return project, software, cluster


def ensure_scene(frames: int = 48, width: int = 320, height: int = 240, samples: int = 16) -> str:
    """The demo scene's URL; generated with Blender's own Python the first time."""
    backend, folder = storage.resolve(storage.join(storage_base(), SCENE_FOLDER))
    scene_key = folder + SCENE_NAME
    if backend.exists(scene_key):
        return backend.url_for(scene_key)
    blender = shutil.which("blender")
    if blender is None:
        raise DemoError("Blender is not installed: run `sudo apt-get install blender`.")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / SCENE_NAME
        argv = [blender, "-b", "--factory-startup", "--python", str(SCENE_SCRIPT), "--", str(out)]
        argv += ["--frames", str(frames), "--width", str(width), "--height", str(height)]
        argv += ["--samples", str(samples)]
        quiet = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # nothing into Blender's install
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, check=False, env=quiet
        )
        if result.returncode != 0 or not out.exists():
            raise DemoError(f"Blender could not build the demo scene:\n{result.stderr[-2000:]}")
        # The texture goes first: a scene must never be visible without its files.
        for path in sorted(Path(tmp).rglob("*"), key=lambda p: p.suffix == ".blend"):
            if path.is_file():
                backend.upload_file(path, folder + path.relative_to(tmp).as_posix())
    log.info("demo scene stored at %s", backend.url_for(scene_key))
    return backend.url_for(scene_key)


def setup() -> Demo:
    project, software, cluster = ensure_records()
    return Demo(project, software, cluster, ensure_scene())
