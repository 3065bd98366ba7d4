"""Preview movies: a job that encodes a render job's finished frames into an H.264 MP4.

Submitting with ``movie`` adds, per render job, a job of the image's built-in ``ffmpeg``
software (images/migrations/0005_ffmpeg.py) that runs after it (jobs.scheduling). It has one
frame and one chunk, and writes into the render job's own output folder. When the render
job finishes, :func:`prepare` fixes what its node stages (the job's ``scene_files``, as
jobs.scene_manifest lays them out): every finished frame, in frame order, renamed
``frames/000001.<ext>`` and on (ffmpeg reads a sequence without gaps, whatever the job's
frame numbers), and the first one again as ``preview.<ext>``, its "scene". The movie is
``preview_0001.mp4`` in the render job's folder; the job page plays it from a signed link.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from clusters.choices import Backend
from images.models import Software
from renderhub import storage

from .choices import FrameState, JobState
from .models import Frame, RenderJob, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clusters.models import Cluster
    from projects.models import Project

SOFTWARE = "ffmpeg"  # the built-in software on the project's image
SCENE_STEM = "preview"
MOVIE_NAME = f"{SCENE_STEM}_0001.mp4"  # {scene_name}_%04d.mp4, the job's one frame being 1
IMAGE_EXTS = ("png", "jpg", "jpeg", "tif", "tiff", "exr")
DEFAULT_FPS = 24


def software_for(project: Project) -> Software | None:
    return Software.objects.filter(image_id=project.image_id, name=SOFTWARE).first()


def check(project: Project, cluster: Cluster, errors: dict[str, list[Any]]) -> None:
    """Refuse a movie when the project's image has no ffmpeg to make it, or the cluster is
    BatchCompute's (its nodes stage from the project's mappings, not the output folder)."""
    if software_for(project) is None:
        errors.setdefault("movie", []).append(
            f"The image {project.image} has no '{SOFTWARE}' software to make preview movies."
        )
    elif cluster.backend != Backend.CELERY:
        errors.setdefault("movie", []).append(
            "Preview movies are made on clusters of your own machines, not on BatchCompute."
        )


def add(job: RenderJob, user: User | None) -> RenderJob:
    """The movie job of a render job being submitted (inside its transaction)."""
    software = software_for(job.project)
    assert software is not None  # check() refused the submission otherwise
    movie = RenderJob.objects.create(
        project=job.project,
        software=software,
        cluster=job.cluster,
        submitted_by=user,
        submission=job.submission,
        name=f"{job.name} (preview movie)"[:200],
        scene_url=job.scene_url,  # until prepare() names the frames
        frame_spec="1",
        frame_count=1,
        node_count=1,
        parameters={"fps": DEFAULT_FPS, "image_ext": "png"},
        priority=job.priority,
        output_url=job.output_url,  # the movie lands next to the frames
        waiting=True,
        movie_of=job,
    )
    movie.after.set([job])
    task = Task.objects.create(
        job=movie, index=0, frames=[1], max_attempts=settings.RENDER_TASK_MAX_ATTEMPTS
    )
    Frame.objects.create(job=movie, task=task, number=1)
    return movie


def prepare(movie: RenderJob) -> str:
    """Fix the frames the movie's node stages, now that its render job finished; returns
    why no movie can be made ("" when it can)."""
    source = movie.movie_of
    if source is None:
        return ""
    urls = list(
        source.frame_set.filter(state=FrameState.DONE)
        .exclude(output_url="")
        .order_by("number")
        .values_list("output_url", flat=True)
    )
    if len(urls) != source.frame_count:
        return f"Job #{source.pk} has {len(urls)} of {source.frame_count} frames with an image."
    ext = posixpath.splitext(storage.resolve(urls[0])[1])[1].lower().lstrip(".")
    if ext not in IMAGE_EXTS:
        return f"Preview movies are made from {', '.join(IMAGE_EXTS)} frames, not .{ext}."
    files = [{"url": url, "place": f"frames/{n:06d}.{ext}"} for n, url in enumerate(urls, 1)]
    scene = f"{SCENE_STEM}.{ext}"
    files.append({"url": urls[0], "place": scene})
    manifest = {"version": 1, "scene": scene, "files": files, "missing": [], "folder": False}
    RenderJob.objects.filter(pk=movie.pk).update(
        scene_url=urls[0],
        scene_files=manifest,
        parameters={**movie.parameters, "image_ext": ext},
    )
    return ""


@dataclass(frozen=True)
class Preview:
    job: RenderJob
    url: str  # a signed link to the MP4 once the movie job finished, else ""

    @property
    def state(self) -> str:
        return str(self.job.get_state_display())


def preview_of(job: RenderJob) -> Preview | None:
    """The render job's preview movie (``job.movies`` may be prefetched), or None."""
    movie = next(iter(job.movies.all()), None)
    if movie is None:
        return None
    url = ""
    if movie.state == JobState.FINISHED:
        try:
            url = _signed(storage.join(movie.output_url, MOVIE_NAME))
        except storage.StorageError:
            url = ""
    return Preview(movie, url)


def _signed(url: str) -> str:
    from .outputs import signed_link

    return signed_link(url)
