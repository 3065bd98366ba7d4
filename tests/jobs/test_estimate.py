"""The submit page's estimate: per scene, from the same scene's earlier frames with the
same software first, then the software's earlier jobs in the project, then the project's;
and it says which. (It used to average the whole project: 0.12 s per frame claimed for a
scene that took 11 s.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from images.models import Software
from jobs import queries
from jobs.choices import JobState
from jobs.models import RenderJob
from projects.models import Project

pytestmark = pytest.mark.django_db

HEAVY = "file:///x/scenes/heavy shot ü.blend"  # spaces and unicode in a URL
LIGHT = "file:///x/scenes/light.blend"
NEW = "file:///x/scenes/new.blend"


def done(project: Any, software: Any, cluster: Any, scene: str, frames: int, spf: float) -> None:
    RenderJob.objects.create(
        project=project,
        software=software,
        cluster=cluster,
        name=scene.rsplit("/", 1)[-1],
        scene_url=scene,
        frame_spec=f"1-{frames}",
        frame_count=frames,
        node_count=1,
        output_url="file:///x/out/",
        state=JobState.FINISHED,
        frames_done=frames,
        render_seconds=frames * spf,
    )


@pytest.fixture
def history(project: Any, blender_software: Any, cluster: Any) -> Any:
    done(project, blender_software, cluster, HEAVY, 12, 11.0)
    done(project, blender_software, cluster, LIGHT, 100, 0.12)
    return project


def estimate(project: Any, software: Any, scenes: list[str], frames: int = 10) -> Any:
    return queries.estimate(
        project, software.pk if software else None, None, frames, scenes, 1, None
    )


def test_a_scene_measured_before_uses_its_own_speed(history: Any, blender_software: Any) -> None:
    found = estimate(history, blender_software, [HEAVY])
    assert found.seconds_per_frame == pytest.approx(11.0)  # not the project's 1.29
    assert found.basis == "from 12 frames of this scene"
    assert found.wall_seconds == pytest.approx(110.0)


def test_a_new_scene_uses_the_softwares_then_the_projects_history(
    history: Any, blender_software: Any, image: Any
) -> None:
    found = estimate(history, blender_software, [NEW])
    assert found.seconds_per_frame == pytest.approx((132 + 12) / 112)
    assert found.basis == "from this software's earlier jobs"
    other = Software.objects.create(image=image, name="other", command_template=["x"])
    found = estimate(history, other, [HEAVY])
    assert found.basis == "from this project's earlier jobs"


def test_several_scenes_add_up_each_with_its_own_basis(history: Any, blender_software: Any) -> None:
    found = estimate(history, blender_software, [HEAVY, NEW], frames=10)
    assert found.frames == 20
    assert found.wall_seconds == pytest.approx(10 * 11.0 + 10 * (144 / 112))
    assert found.basis == (
        "1 scene from its own earlier frames; 1 scene from this software's earlier jobs"
    )


def test_another_projects_history_of_the_same_scene_is_not_used(
    image: Any, storage_url: str, blender_software: Any, cluster: Any, history: Any
) -> None:
    other = Project.objects.create(name="other", image=image, output_prefix=storage_url + "o/")
    found = estimate(other, blender_software, [HEAVY])
    assert found.seconds_per_frame is None and found.wall_seconds is None and found.basis == ""


def test_the_page_says_what_the_estimate_is_based_on(
    client: Any, bob: Any, history: Any, blender_software: Any, cluster: Any
) -> None:
    client.force_login(bob)
    query = {
        "project": history.pk,
        "software": blender_software.pk,
        "cluster": cluster.pk,
        "frames": "1-10",
        "nodes": 1,
        "scenes": HEAVY,
    }
    text = client.get("/submit/estimate/?" + urlencode(query)).content.decode()
    assert "11.00 s per frame, from 12 frames of this scene" in text
    query["scenes"] = NEW
    text = client.get("/submit/estimate/?" + urlencode(query)).content.decode()
    assert "from this software&#x27;s earlier jobs" in text
    empty = Project.objects.create(name="empty", image=history.image, output_prefix="file:///e/")
    empty.members.add(bob)
    query["project"] = empty.pk
    text = client.get("/submit/estimate/?" + urlencode(query)).content.decode()
    assert "No time estimate yet" in text
