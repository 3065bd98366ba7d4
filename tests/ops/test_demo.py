"""The demo set-up behind `make demo` (the whole stack runs in CI as `DEMO_EXIT=1 make demo`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from clusters.models import Cluster
from ops import demo
from projects.models import Project
from renderhub import storage

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_setting_up_twice_changes_nothing(image) -> None:
    first = demo.ensure_records()
    second = demo.ensure_records()
    assert [o.pk for o in first] == [o.pk for o in second]
    assert Project.objects.filter(name="demo").count() == 1
    assert Cluster.objects.filter(name="local").count() == 1
    project, software, cluster = second
    assert software.name == "blender" and cluster.queue == "render.local"
    assert project.mappings.count() == 1


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_the_scene_is_generated_once_with_its_texture(image) -> None:
    url = demo.ensure_scene(frames=2, width=32, height=24, samples=1)
    backend, key = storage.resolve(url)
    path = backend.local_path(key)
    assert path is not None and path.stat().st_size > 0
    assert (path.parent / "textures" / "checker.png").is_file()
    mtime = path.stat().st_mtime_ns
    assert demo.ensure_scene() == url
    assert path.stat().st_mtime_ns == mtime  # not rebuilt


def test_it_says_what_to_install_without_blender(image, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match="apt-get install blender"):
        call_command("demo", "--exit")


def test_the_stack_runs_web_a_render_worker_and_beat(tmp_path: Path) -> None:
    from ops.management.commands.demo import Stack

    commands = Stack(tmp_path, 8123).commands()
    assert set(commands) == {"web", "worker", "beat"}
    assert "127.0.0.1:8123" in commands["web"]
    worker = commands["worker"]
    assert worker[worker.index("-Q") + 1] == "renderhub,render.local"
