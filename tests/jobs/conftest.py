from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

FAKE_RENDER = Path(__file__).with_name("fake_render.py")


def make_fake_software(image: Any) -> Any:
    """A renderer on ``image`` whose behaviour a test picks with the ``mode`` parameter."""
    from images.models import Software

    return Software.objects.create(
        image=image,
        name="fakerender",
        scene_suffixes=".blend",
        command_template=[
            sys.executable,
            str(FAKE_RENDER),
            "{output_pattern}",
            "{frames}",
            "{mode}",
        ],
        parameters=[
            {
                "name": "mode",
                "type": "choice",
                "choices": ["ok", "fail", "slow", "steady"],
                "default": "ok",
            }
        ],
        progress_parser="blender",
    )


def submit_one(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> Any:
    """One job of one scene, through the submission service as every caller sends it."""
    from jobs import services

    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], **kw
    )
    [job] = services.submit_render(request)
    return job


@pytest.fixture
def fake_software(image: Any) -> Any:
    return make_fake_software(image)


@pytest.fixture
def adaptive_settings(settings: Any) -> None:
    """Adaptive chunks' settings as their tests assume: a 1 s start-up until one is
    measured, 60 s chunks by default."""
    settings.RENDER_CHUNK_STARTUP_SECONDS = 1.0
    settings.RENDER_CHUNK_SECONDS = 60
