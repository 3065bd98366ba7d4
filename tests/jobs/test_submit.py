from __future__ import annotations

from typing import Any

import pytest

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob
from tests.workers import online_node

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def request(project: Any, software: Any, cluster: Any, scenes: list[str], **kw: Any):
    return services.RenderRequest(
        project=project,
        software=software,
        cluster=cluster,
        scenes=scenes,
        **{"frames": "1-48", **kw},
    )


def test_it_splits_frames_evenly_over_nodes(
    project, blender_software, cluster, scene_url, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        [job] = services.submit_render(
            request(project, blender_software, cluster, [scene_url], nodes=3)
        )
    assert job.state == JobState.QUEUED
    assert job.frame_count == 48
    assert [t.frames for t in job.tasks.order_by("index")] == [
        list(range(1, 17)),
        list(range(17, 33)),
        list(range(33, 49)),
    ]
    assert Frame.objects.filter(job=job, state=FrameState.QUEUED).count() == 48
    assert job.output_url.startswith(project.output_prefix)
    assert job.parameters == {"engine": "CYCLES", "format": "PNG"}
    assert len(callbacks) == 1  # dispatch is enqueued only once the rows are committed


def test_chunk_size_makes_a_work_queue(project, blender_software, cluster, scene_url) -> None:
    [job] = services.submit_render(
        request(project, blender_software, cluster, [scene_url], frames="1-10", chunk_size=4)
    )
    assert [t.frames for t in job.tasks.order_by("index")] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def test_one_job_per_scene_grouped_as_one_submission(
    project, blender_software, cluster, scene_url, storage_root
) -> None:
    (storage_root / "scenes" / "shot_b.blend").write_bytes(b"x")
    second = scene_url.replace("shot_a", "shot_b")
    jobs = services.submit_render(request(project, blender_software, cluster, [scene_url, second]))
    assert [j.name for j in jobs] == ["shot_a", "shot_b"]
    assert jobs[0].submission == jobs[1].submission
    assert jobs[0].output_url != jobs[1].output_url


def test_test_frame_first_holds_the_rest(project, blender_software, cluster, scene_url) -> None:
    [job] = services.submit_render(
        request(
            project,
            blender_software,
            cluster,
            [scene_url],
            frames="1-9",
            nodes=2,
            test_frame_first=True,
        )
    )
    tasks = list(job.tasks.order_by("index"))
    assert tasks[0].is_test and tasks[0].frames == [1] and tasks[0].state == TaskState.QUEUED
    assert [t.state for t in tasks[1:]] == [TaskState.HELD, TaskState.HELD]
    assert [f for t in tasks[1:] for f in t.frames] == list(range(2, 10))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"frames": "10-1"}, "frames", "runs backwards"),
        ({"nodes": 5}, "nodes", "between 1 and 4"),
        ({"nodes": 0}, "nodes", "between 1 and 4"),
        ({"parameters": {"engine": "POVRAY"}}, "parameters", "must be one of"),
        ({"parameters": {"samples": "4"}}, "parameters", "Unknown parameter 'samples'"),
        ({"scenes": []}, "scenes", "at least one scene"),
        ({"priority": 1000}, "priority", "between -100 and 100"),
        ({"nodes": 2, "chunk_size": 5}, "chunk_size", "Give nodes or a chunk size, not both."),
    ],
)
def test_bad_submissions_name_the_field_and_create_nothing(
    project, blender_software, cluster, scene_url, changes, field, message
) -> None:
    kw = {"scenes": [scene_url], **changes}
    scenes = kw.pop("scenes")
    with pytest.raises(services.SubmissionError) as info:
        services.submit_render(request(project, blender_software, cluster, scenes, **kw))
    assert any(message in m for m in info.value.message_dict[field])
    assert not RenderJob.objects.exists()


def test_scene_must_exist_match_the_software_and_lie_in_a_mapping(
    project, blender_software, cluster, storage_url, storage_root
) -> None:
    (storage_root / "elsewhere").mkdir()
    (storage_root / "elsewhere" / "x.blend").write_bytes(b"x")
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "notes.txt").write_text("x")
    scenes = [
        storage_url + "scenes/missing.blend",
        storage_url + "scenes/notes.txt",
        storage_url + "elsewhere/x.blend",
        storage_url + "scenes/../../etc/passwd.blend",
        "http://example.com/a.blend",
    ]
    with pytest.raises(services.SubmissionError) as info:
        services.submit_render(request(project, blender_software, cluster, scenes))
    errors = " | ".join(info.value.message_dict["scenes"])
    assert "missing.blend does not exist" in errors
    assert "notes.txt is not a blender scene" in errors
    assert "outside this project's storage mappings" in errors
    assert errors.count("|") == 4  # one message per bad scene
    assert not RenderJob.objects.exists()


def test_outsiders_cannot_submit_to_a_project(
    project, blender_software, cluster, scene_url, charlie, bob
) -> None:
    with pytest.raises(services.SubmissionError, match="not a member"):
        services.submit_render(
            request(project, blender_software, cluster, [scene_url]), user=charlie
        )
    [job] = services.submit_render(
        request(project, blender_software, cluster, [scene_url]), user=bob
    )
    assert job.submitted_by == bob


def test_chunks_never_sent_are_dispatched_by_dispatch_pending(
    project, blender_software, cluster, scene_url
) -> None:
    # Under the rollback `db` fixture on_commit never fires: exactly a crash after commit.
    [job] = services.submit_render(
        request(project, blender_software, cluster, [scene_url], frames="1-4", nodes=2)
    )
    assert not job.tasks.filter(queued_at__isnull=False).exists()
    assert services.dispatch_pending() == 0  # no node has a free slot yet
    online_node(cluster, slots=4)
    assert services.dispatch_pending() == 2
    assert all(t.queued_at and t.celery_task_id for t in job.tasks.all())
    assert services.dispatch_pending() == 0  # sent once, not again


def test_a_chunk_long_unclaimed_while_a_node_idles_is_sent_again(
    project, blender_software, cluster, scene_url, settings
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from clusters.choices import NodeState
    from clusters.models import ClusterNode

    settings.RENDER_REDISPATCH_AFTER = 60
    [job] = services.submit_render(
        request(project, blender_software, cluster, [scene_url], frames="1", nodes=1)
    )
    long_ago = timezone.now() - timedelta(seconds=120)
    job.tasks.update(queued_at=long_ago, celery_task_id="lost-message")
    node = ClusterNode.objects.create(
        cluster=cluster, name="w@host", state=NodeState.BUSY, last_seen=timezone.now()
    )
    assert services.dispatch_pending() == 0  # every node busy: the chunk is just waiting

    node.state = NodeState.IDLE
    node.save()
    assert services.dispatch_pending() == 1
    task = job.tasks.get()
    assert task.celery_task_id != "lost-message" and task.queued_at > long_ago
