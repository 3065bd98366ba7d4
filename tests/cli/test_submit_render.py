from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clusters.models import Cluster
from images.models import Software
from jobs.choices import JobState, TaskState
from jobs.management.commands import submit_render as command
from jobs.models import RenderJob
from renderhub import storage

from .conftest import render_task

pytestmark = pytest.mark.django_db


def submit_args(scene: str, *extra: str) -> list[str]:
    return ["submit_render", "--project", "shots", "--scene", scene, "--frames", "1-48", *extra]


def test_it_submits_a_scene_url_and_prints_the_job(run: Any, scene_url: str, project: Any) -> None:
    result = run(*submit_args(scene_url))

    job = RenderJob.objects.get()
    assert result.out == f"#{job.pk} shot_a  48 frames in 2 chunks  -> {job.output_url}\n"
    prefix = storage.join(project.output_prefix, f"{job.pk}-shot_a-")
    assert re.fullmatch(re.escape(prefix) + r"[0-9a-f]{6}/", job.output_url)
    assert (job.scene_url, job.frame_count, job.submitted_by) == (scene_url, 48, None)
    assert [t.frames[0] for t in job.tasks.all()] == [1, 25]


def test_it_requests_dispatch_when_the_transaction_commits(
    run: Any, scene_url: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        run(*submit_args(scene_url))
    assert len(callbacks) == 1


def test_it_passes_chunks_params_priority_name_and_test_frame(run: Any, scene_url: str) -> None:
    run(
        *submit_args(scene_url, "--chunk", "10", "--param", "engine=BLENDER_EEVEE"),
        *["--priority", "7", "--name", "hero", "--test-frame"],
    )

    job = RenderJob.objects.get()
    assert (job.name, job.priority, job.chunk_size) == ("hero", 7, 10)
    assert job.parameters["engine"] == "BLENDER_EEVEE"
    tasks = list(job.tasks.all())
    assert tasks[0].is_test and tasks[0].frames == [1]
    assert [t.state for t in tasks[1:]] == [TaskState.HELD] * 5
    assert [len(t.frames) for t in tasks[1:]] == [10, 10, 10, 10, 7]


def test_it_submits_one_job_per_scene(run: Any, scene_url: str, storage_root: Path) -> None:
    (storage_root / "scenes/shot_b.blend").write_bytes(b"b")
    second = scene_url.replace("shot_a", "shot_b")

    result = run(*submit_args(scene_url), "--scene", second, "--nodes", "3")

    jobs = list(RenderJob.objects.order_by("pk"))
    assert [j.name for j in jobs] == ["shot_a", "shot_b"]
    assert len({j.submission for j in jobs}) == 1
    assert result.out.count("48 frames in 3 chunks") == 2


def test_it_refuses_a_bad_frame_spec_with_the_reason(run: Any, scene_url: str) -> None:
    with pytest.raises(CommandError) as exc:
        run("submit_render", "--project", "shots", "--scene", scene_url, "--frames", "1-x")
    assert "frames: '1-x' is not a frame, a range like 1-48" in str(exc.value)
    assert not RenderJob.objects.exists()


def test_it_prints_every_problem_per_field(run: Any, scene_url: str) -> None:
    missing = scene_url.replace("shot_a", "missing")
    with pytest.raises(CommandError) as exc:
        run(*submit_args(missing, "--priority", "500", "--param", "engine=POVRAY"))
    message = str(exc.value)
    assert message.startswith("The submission was refused:")
    assert f"  scenes: {missing} does not exist." in message
    assert "  priority: Priority must be between -100 and 100." in message
    assert "  parameters: " in message


def test_it_says_when_the_project_does_not_exist(run: Any, project: Any) -> None:
    with pytest.raises(CommandError, match=r"There is no project named 'nope' \(projects: shots\)"):
        run("submit_render", "--project", "nope", "--scene", "x.blend", "--frames", "1")


def test_it_refuses_nodes_and_chunk_together_before_uploading(
    run: Any, scene_url: str, storage_root: Path, tmp_path: Path
) -> None:
    refusal = "The submission was refused:\n  chunk_size: Give nodes or a chunk size, not both."
    with pytest.raises(CommandError) as exc:
        run(*submit_args(scene_url, "--nodes", "2", "--chunk", "5"))
    assert str(exc.value) == refusal  # the service's words, as the API and the forms say it
    local = tmp_path / "shot 8" / "shot_8.blend"
    local.parent.mkdir()
    local.write_bytes(b"BLENDER-v304")
    with pytest.raises(CommandError) as exc:
        run(*submit_args(str(local), "--nodes", "2", "--chunk", "5"))
    assert str(exc.value) == refusal
    assert not (storage_root / "scenes" / "uploads").exists()
    assert not RenderJob.objects.exists()


def test_it_refuses_a_param_without_equals(run: Any, scene_url: str) -> None:
    with pytest.raises(CommandError, match=r"--param name=value \(not 'engine'\)"):
        run(*submit_args(scene_url, "--param", "engine"))


def test_it_uploads_the_folder_of_a_scene_whose_references_cannot_be_read(
    run: Any, project: Any, storage_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "shot 7"
    (folder / "textures").mkdir(parents=True)
    (folder / "scene.blend").write_bytes(b"scene")
    (folder / "textures" / "wood.png").write_bytes(b"x" * 5000)

    result = run(*submit_args(str(folder / "scene.blend")))

    [uploaded] = (storage_root / "scenes/uploads").glob("*/shot 7")
    assert (uploaded / "scene.blend").read_bytes() == b"scene"
    assert (uploaded / "textures/wood.png").read_bytes() == b"x" * 5000
    job = RenderJob.objects.get()
    assert job.scene_url == storage.join(
        project.mappings.get().source,
        f"uploads/{uploaded.parent.name}/shot 7/scene.blend",
    )
    assert "Uploading 2 files" in result.out
    assert "its references could not be read" in result.err
    assert "4.9 KB/4.9 KB" in result.out  # the final progress line
    assert f"#{job.pk} scene  48 frames" in result.out


def test_it_checks_everything_before_uploading(
    run: Any, project: Any, storage_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "shot").mkdir()
    (tmp_path / "shot" / "scene.blend").write_bytes(b"scene")
    (tmp_path / "shot" / "notes.txt").write_text("hi")

    with pytest.raises(CommandError) as exc:
        run(
            "submit_render", "--project", "shots", "--frames", "9-1",
            *["--scene", str(tmp_path / "shot" / "scene.blend")],
            *["--scene", str(tmp_path / "shot" / "notes.txt")],
            *["--scene", str(tmp_path / "gone.blend")],
        )  # fmt: skip

    message = str(exc.value)
    assert "frames: Range '9-1' runs backwards" in message
    assert "scenes: notes.txt is not a blender scene (expected .blend)." in message
    assert f"scenes: {tmp_path / 'gone.blend'} is not a file." in message
    assert "Choose at least one scene" not in message
    assert not (storage_root / "scenes/uploads").exists()


def test_it_needs_a_storage_mapping_to_upload_to(run: Any, project: Any, tmp_path: Path) -> None:
    project.mappings.all().delete()
    (tmp_path / "shot").mkdir()
    (tmp_path / "shot" / "scene.blend").write_bytes(b"scene")
    with pytest.raises(CommandError, match="Project shots has no storage mapping to upload"):
        run(*submit_args(str(tmp_path / "shot" / "scene.blend")))


def test_it_asks_which_software_when_the_image_has_several(
    run: Any, scene_url: str, image: Any
) -> None:
    Software.objects.create(
        image=image, name="maya", scene_suffixes=".mb,.blend", command_template=["x"]
    )
    with pytest.raises(CommandError, match=r"several software for these scenes \(blender, maya\)"):
        run(*submit_args(scene_url))
    with pytest.raises(CommandError, match=r"no software named 'max' \(choose from: blender, ffm"):
        run(*submit_args(scene_url, "--software", "max"))
    run(*submit_args(scene_url, "--software", "blender"))
    assert RenderJob.objects.get().software.name == "blender"


def test_it_defaults_to_the_only_cluster_else_the_one_named_local(
    run: Any, scene_url: str, image: Any, cluster: Cluster
) -> None:
    run(*submit_args(scene_url))
    assert RenderJob.objects.get().cluster == cluster

    Cluster.objects.create(name="farm", image=image)
    pattern = rf"clusters run image local-linux \(farm, {cluster.name}\); choose with --cluster"
    with pytest.raises(CommandError, match=pattern):
        run(*submit_args(scene_url))

    local = Cluster.objects.create(name="local", image=image)
    run(*submit_args(scene_url))
    assert RenderJob.objects.latest("pk").cluster == local
    run(*submit_args(scene_url, "--cluster", "farm"))
    assert RenderJob.objects.latest("pk").cluster.name == "farm"


def test_it_explains_an_unusable_cluster(run: Any, scene_url: str, cluster: Cluster) -> None:
    cluster.state = "deleting"
    cluster.save()
    with pytest.raises(CommandError, match=rf"cluster: Cluster {cluster.name} is deleting\."):
        run(*submit_args(scene_url, "--cluster", cluster.name))
    with pytest.raises(CommandError, match="No active cluster runs image local-linux"):
        run(*submit_args(scene_url))
    with pytest.raises(CommandError, match="There is no cluster named 'gpu'"):
        run(*submit_args(scene_url, "--cluster", "gpu"))


def test_it_submits_as_a_member(run: Any, scene_url: str, bob: Any) -> None:
    run(*submit_args(scene_url, "--as-user", "bob"))
    assert RenderJob.objects.get().submitted_by == bob


def test_it_hides_projects_the_user_is_not_in(
    run: Any, scene_url: str, other_project: Any, charlie: Any
) -> None:
    with pytest.raises(CommandError, match=r"no project named 'shots' \(projects: ads\)\.$"):
        run(*submit_args(scene_url, "--as-user", "dave"))
    with pytest.raises(CommandError, match=r"no project named 'shots' \(projects: none\)\.$"):
        run(*submit_args(scene_url, "--as-user", "charlie"))


def test_it_rejects_an_unknown_user(run: Any, scene_url: str) -> None:
    with pytest.raises(CommandError, match="There is no user named 'eve'"):
        run(*submit_args(scene_url, "--as-user", "eve"))


# --- --wait -----------------------------------------------------------------------------


def simulate(monkeypatch: pytest.MonkeyPatch, *outcomes: dict[str, Any]) -> list[int]:
    """Each poll pause renders the next chunk with the given outcome (as a worker would)."""
    pauses: list[int] = []

    def pause() -> None:
        job = RenderJob.objects.latest("pk")
        task = job.tasks.get(index=len(pauses))
        render_task(task, **outcomes[len(pauses)])
        pauses.append(task.index)

    monkeypatch.setattr(command, "_pause", pause)
    return pauses


def test_it_waits_until_the_jobs_finish(
    run: Any, scene_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = simulate(monkeypatch, {}, {})

    result = run(*submit_args(scene_url, "--wait"))

    job = RenderJob.objects.get()
    assert pauses == [0, 1]
    assert job.state == JobState.FINISHED
    assert "] 0/48 frames  0:00 elapsed" in result.out
    assert f"[{'#' * 30}] 48/48 frames" in result.out
    assert re.search(rf"#{job.pk} shot_a finished in \d+:\d\d  -> {job.output_url}\n$", result.out)


def test_it_fails_with_the_reason_when_a_waited_job_fails(
    scene_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(monkeypatch, {}, {"ok": False, "frames": [25, 26], "reason": "Blender crashed"})
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as exc:
        call_command(*submit_args(scene_url, "--wait"), stdout=out, stderr=err)

    job = RenderJob.objects.get()
    assert (job.state, job.frames_done) == (JobState.FAILED, 26)
    assert str(exc.value) == f"1 of 1 jobs did not finish: #{job.pk} failed."
    assert exc.value.returncode == 1
    # Before them: the warning that the stand-in scene's facts could not be read.
    assert err.getvalue().endswith(
        f"#{job.pk} shot_a failed: 1 of 2 chunks failed; first: Blender crashed\n"
        f"  26 frames were rendered -> {job.output_url}\n"
    )
    assert "26/48 frames  22 failed" in out.getvalue()


def test_it_stops_waiting_on_ctrl_c(
    run: Any, scene_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "_pause", interrupt)
    with pytest.raises(CommandError, match="Stopped waiting; the jobs keep rendering") as exc:
        run(*submit_args(scene_url, "--wait"))
    assert exc.value.returncode == 130
    assert RenderJob.objects.get().state == JobState.QUEUED
