"""Shared fixtures: a private storage root and work dir per test, and named personas.

alice is a superuser, bob a member of the project, charlie a member of nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workers import celery_worker, render_worker_for

# The BatchCompute and OSS fakes' fixtures (cloud_project, fake_bc, submitted…) for every
# test that asks for them by name.
pytest_plugins = ["tests.compute.fixtures"]
# The Blenders tests start themselves (scenes made in code) write no bytecode into the
# install: run as root they would, and every later plain Blender on the machine (a
# benchmark's baseline) would start faster than a user's.
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

BLENDER = shutil.which("blender")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    """Cheap password hashing (personas are made in many tests), and static URLs that need
    no collectstatic manifest (tests run on a fresh var/)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    settings.STORAGES = {**settings.STORAGES, "staticfiles": plain}


@pytest.fixture(autouse=True)
def _sandbox_sees_test_programs(settings: Any) -> None:
    """Renderers stay sandboxed in tests; the stand-in renderers are Python scripts in
    tests/ run by the venv's Python, so the sandbox may read those (not var/ or storage)."""
    settings.RENDER_SANDBOX_PATHS = [str(REPO / "tests"), sys.prefix, sys.base_prefix]


@pytest.fixture(autouse=True)
def _private_dirs(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test gets its own storage root, work dir and download dir."""
    base = tmp_path_factory.mktemp("renderhub")
    settings.LOCAL_STORAGE_ROOT = base / "storage"
    settings.LOCAL_STORAGE_ROOT.mkdir()
    settings.STORAGE_URL = settings.LOCAL_STORAGE_ROOT.as_uri() + "/"
    settings.RENDER_WORK_DIR = base / "work"
    settings.AUTO_DOWNLOAD_DIR = base / "downloads"
    from renderhub import storage

    if hasattr(storage, "reset_cache"):
        storage.reset_cache()
    return base


@pytest.fixture
def storage_root(settings: Any) -> Path:
    return Path(settings.LOCAL_STORAGE_ROOT)


@pytest.fixture
def storage_url(settings: Any) -> str:
    return str(settings.STORAGE_URL)


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "pw-alice-1")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        "bob", "bob@example.com", "pw-bob-1", is_staff=True
    )


@pytest.fixture
def charlie(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        "charlie", "charlie@example.com", "pw-charlie-1", is_staff=True
    )


@pytest.fixture
def image(db: None) -> Any:
    """The image the data migrations make, with their Blender and ffmpeg (re-made as they
    make it when a transactional test flushed it: a test sees the same built-ins whether it
    runs before or after one, in whatever order a pytest-xdist worker runs it)."""
    import importlib

    from django.apps import apps

    from images.models import ComputeImage

    if not ComputeImage.objects.filter(name="local-linux").exists():
        for migration in ("0002_blender", "0005_ffmpeg"):
            importlib.import_module(f"images.migrations.{migration}").create(apps, None)
    return ComputeImage.objects.get(name="local-linux")


@pytest.fixture
def blender_software(image: Any) -> Any:
    return image.software.get(name="blender")


def make_project(name: str, image: Any, storage_url: str, output: str, *members: Any) -> Any:
    """A project whose scenes are the storage's ``scenes/`` folder, writing to ``output``."""
    from projects.models import Project, StorageMapping

    project = Project.objects.create(name=name, image=image, output_prefix=storage_url + output)
    StorageMapping.objects.create(
        project=project, source=storage_url + "scenes/", destination="/mnt/scenes/"
    )
    project.members.add(*members)
    return project


@pytest.fixture
def project(image: Any, storage_url: str, bob: Any) -> Any:
    return make_project("shots", image, storage_url, "output/", bob)


@pytest.fixture
def cluster(image: Any) -> Any:
    import uuid

    from clusters.models import Cluster

    # A unique name per test: its queue never sees another run's leftover messages.
    return Cluster.objects.create(
        name=f"local-{uuid.uuid4().hex[:8]}", image=image, desired_nodes=2, max_nodes=4
    )


@pytest.fixture
def render_worker(cluster: Any, settings: Any) -> Iterator[Any]:
    """A real Celery worker rendering the cluster's chunks (tests/workers.py)."""
    with render_worker_for(cluster, settings) as worker:
        yield worker


@pytest.fixture
def task_worker() -> Iterator[Any]:
    """A real Celery worker on a private default queue, where tasks sent without a queue go
    (workflow starts, webhook deliveries, e-mail)."""
    with celery_worker() as worker:
        yield worker


@pytest.fixture
def scene_url(storage_root: Path, storage_url: str) -> str:
    """A stand-in scene file in the project's mapped folder."""
    path = storage_root / "scenes" / "shot_a.blend"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"BLENDER-v304 not a real scene")
    return storage_url + "scenes/shot_a.blend"


def build_demo_scene(path: Path, frames: int, width: int = 64, height: int = 48) -> Path:
    """The demo scene (jobs/blender/demo_scene.py) at test size, built by real Blender."""
    import subprocess

    script = Path(__file__).parents[1] / "jobs" / "blender" / "demo_scene.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = ["blender", "-b", "--factory-startup", "--python", str(script), "--", str(path)]
    argv += ["--frames", str(frames), "--width", str(width), "--height", str(height)]
    subprocess.run([*argv, "--samples", "4"], check=True, capture_output=True, timeout=120)
    return path
