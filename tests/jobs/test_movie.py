"""Preview movies (jobs.movies): a job after the render job encodes its finished frames
into an H.264 MP4 in the render job's folder, with the built-in ffmpeg, on a real worker."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps

from jobs import movies, services
from jobs.choices import JobState
from jobs.models import RenderJob
from renderhub import storage
from tests.conftest import build_demo_scene
from tests.workers import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.embedded,
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg"),
]


@pytest.fixture
def ffmpeg(image: Any) -> Any:
    """The built-in ffmpeg (re-made when a transactional test flushed the migration's row)."""
    importlib.import_module("images.migrations.0005_ffmpeg").create(apps, None)
    return image.software.get(name="ffmpeg")


def submit(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> RenderJob:
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], movie=True, **kw
    )
    return services.submit_render(request)[0]


def probe(path: Path) -> dict[str, Any]:
    """The movie's video stream as ffprobe reads it, frames counted by decoding."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames"]
    argv += ["-show_entries", "stream=codec_name,nb_read_frames,width,height,pix_fmt"]
    out = subprocess.run([*argv, "-of", "json", str(path)], check=True, capture_output=True)
    return dict(json.loads(out.stdout)["streams"][0])


def movie_path(job: RenderJob) -> Path:
    backend, prefix = storage.resolve(job.output_url)
    return Path(backend.local_path(prefix + movies.MOVIE_NAME))


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_blender_frames_become_an_h264_movie_with_as_many_frames(
    project, blender_software, ffmpeg, cluster, storage_root, storage_url, render_worker
) -> None:
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=5)
    job = submit(
        project, blender_software, cluster, storage_url + "scenes/ball/ball.blend",
        frames="1-5", nodes=2,
    )  # fmt: skip
    movie = job.movies.get()
    assert movie.is_waiting and movie.software == ffmpeg and movie.output_url == job.output_url
    movie = wait_for(movie, timeout=240)
    job.refresh_from_db()
    assert job.state == JobState.FINISHED, job.failure_reason
    assert movie.state == JobState.FINISHED, movie.failure_reason
    assert movie.started_at >= job.finished_at
    stream = probe(movie_path(job))
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert int(stream["nb_read_frames"]) == job.frame_count == 5
    assert (stream["width"], stream["height"]) == (64, 48)
    preview = movies.preview_of(job)
    assert preview is not None and preview.url and preview.job == movie


def test_frames_with_gaps_in_their_numbers_make_one_movie_in_frame_order(
    project, fake_software, ffmpeg, cluster, scene_url, render_worker
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-10x3", nodes=2)
    movie = wait_for(job.movies.get(), timeout=120)
    t = movie.tasks.get()
    assert movie.state == JobState.FINISHED, t.agent_log_tail[-3000:]
    staged = [f["place"] for f in movie.scene_files["files"]]
    assert staged == [*(f"frames/{n:06d}.png" for n in range(1, 5)), "preview.png"]
    stream = probe(movie_path(job))
    assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) == 4
    assert (stream["width"], stream["height"]) == (32, 24)


def test_a_render_job_without_images_fails_its_movie_saying_why(
    project, fake_software, ffmpeg, cluster, scene_url
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    task.state = "running"
    task.attempts = 1
    task.save()
    services.task_started(task)
    for number in (1, 2):  # frames reported done without a file (a renderer that lied)
        services.frame_done(task, number, seconds=1.0, output_url="", thumbnail_url="")
    services.task_finished(task, ok=True, reason="", exit_code=0, retryable=False)
    movie = job.movies.get()
    assert movie.state == JobState.FAILED and not movie.waiting
    assert movie.failure_reason == f"Job #{job.pk} has 0 of 2 frames with an image."
    assert movie.frames_failed == 1


def test_a_movie_is_refused_on_an_image_without_ffmpeg(
    project, fake_software, cluster, scene_url
) -> None:
    project.image.software.filter(name="ffmpeg").delete()  # the built-in one, as migrated
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-2")
    assert refused.value.message_dict["movie"] == [
        f"The image {project.image} has no 'ffmpeg' software to make preview movies."
    ]
    assert not RenderJob.objects.exists()


def test_a_movie_is_refused_on_batchcompute(
    project, fake_software, ffmpeg, cluster, scene_url
) -> None:
    type(cluster).objects.filter(pk=cluster.pk).update(backend="batchcompute")
    cluster.refresh_from_db()
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-2")
    assert refused.value.message_dict["movie"] == [
        "Preview movies are made on clusters of your own machines, not on BatchCompute."
    ]
