"""Submitting render jobs: every rule checked at once, then the job, its chunks and frames
created in one transaction, and dispatched when it commits."""

from __future__ import annotations

import contextlib
import functools
import logging
import posixpath
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from clusters.choices import Backend, ClusterState
from clusters.models import Cluster
from images import parameters as software_parameters
from images.models import Software
from projects.models import Project
from renderhub import storage
from renderhub.blend.deps import SceneReading
from renderhub.blend.facts import FactsError

from . import chunking, movies, scene_manifest, scheduling
from .choices import TaskState
from .dependencies import DependencyReport, analyse_scene
from .dispatch import enqueue_dispatch
from .framespec import FrameSpecError, parse_frame_spec, split_by_size, split_even
from .models import Frame, RenderJob, Task
from .scene_checks import OUTSIDE_RANGE as OUTSIDE_RANGE
from .scene_checks import check_scenes, local_copy, read_scenes

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

MISSING_FILES = "missing_files"  # the error code callers offer "allow missing files" for
MAX_CHUNK_SECONDS = 86_400


class SubmissionError(ValidationError):
    """Invalid submission; ``message_dict`` maps field names to messages."""


@dataclass
class RenderRequest:
    project: Project
    software: Software
    cluster: Cluster
    scenes: list[str]
    frames: str
    nodes: int | None = None
    chunk_size: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    test_frame_first: bool = False
    name: str = ""
    force: bool = False  # render frames outside the scene's frame range anyway
    allow_missing: bool = False  # render although files the scenes need are not there
    after: list[int] = field(default_factory=list)  # ids of jobs to wait for (scheduling)
    movie: bool = False  # add a preview movie job after each render job (jobs.movies)
    max_nodes: int | None = None  # at most this many chunks at once (dispatch)
    chunk_seconds: int | None = None  # adaptive chunks of about this much work (chunking)


@dataclass
class Validated:
    frames: list[int]
    values: dict[str, Any]  # the software's parameters, coerced
    warnings: list[str]  # what the scene facts say may go wrong, shown to the submitter
    dependencies: dict[str, DependencyReport] = field(default_factory=dict)  # per .blend scene
    after: list[RenderJob] = field(default_factory=list)  # the jobs to wait for


class Submitted(list[RenderJob]):
    """The jobs submit_render created (one per scene), with the warnings about them."""

    def __init__(self, jobs: list[RenderJob], warnings: list[str]) -> None:
        super().__init__(jobs)
        self.warnings = warnings


def _check(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def validate_render(request: RenderRequest, user: User | None) -> Validated:
    """Everything that can be wrong with a submission, all at once, before anything is queued;
    the scene files' facts are checked too (``scene_checks``)."""
    errors: dict[str, list[Any]] = {}
    readable: list[str] = []  # scenes that exist where they should: their facts are read
    project, software, cluster = request.project, request.software, request.cluster
    if user is not None and not Project.objects.visible_to(user).filter(pk=project.pk).exists():
        raise SubmissionError({"project": ["You are not a member of this project."]})
    if software.image_id != project.image_id:
        _check(errors, "software", f"{software} is not on this project's image ({project.image}).")
    if cluster.image_id != project.image_id:
        _check(errors, "cluster", f"Cluster {cluster} runs another image than this project's.")
    if cluster.state != ClusterState.ACTIVE:
        _check(errors, "cluster", f"Cluster {cluster} is {cluster.get_state_display().lower()}.")

    if not request.scenes:
        _check(errors, "scenes", "Choose at least one scene file.")
    if len(set(request.scenes)) != len(request.scenes):
        _check(errors, "scenes", "The same scene is listed twice.")
    mappings = list(project.mappings.all())
    for url in request.scenes:
        try:
            backend, key = storage.resolve(url)
        except storage.StorageError as exc:
            _check(errors, "scenes", f"{url}: {exc}")
            continue
        if not software.accepts_scene(key):
            _check(
                errors,
                "scenes",
                f"{posixpath.basename(key)} is not a {software.name} scene "
                f"(expected {', '.join(software.suffixes)}).",
            )
            continue
        if not any(storage.is_prefix_of(m.source, url) for m in mappings):
            _check(errors, "scenes", f"{url} is outside this project's storage mappings.")
            continue
        try:
            backend.stat(key)
            readable.append(url)
        except storage.NotFound:
            _check(errors, "scenes", f"{url} does not exist.")
        except storage.StorageError as exc:
            _check(errors, "scenes", f"{url} could not be checked: {exc}")

    frames: list[int] = []
    try:
        frames = parse_frame_spec(request.frames, max_frames=settings.RENDER_MAX_FRAMES_PER_JOB)
    except FrameSpecError as exc:
        _check(errors, "frames", str(exc))

    max_nodes = min(cluster.max_nodes, settings.RENDER_MAX_NODES_PER_JOB)
    if request.nodes is not None and not 1 <= request.nodes <= max_nodes:
        _check(
            errors,
            "nodes",
            f"Nodes must be between 1 and {max_nodes} "
            f"(cluster {cluster} allows {cluster.max_nodes}, "
            f"RENDER_MAX_NODES_PER_JOB is {settings.RENDER_MAX_NODES_PER_JOB}).",
        )
    if request.max_nodes is not None and not 1 <= request.max_nodes <= cluster.max_nodes:
        _check(errors, "max_nodes", f"At most nodes must be between 1 and {cluster.max_nodes}.")
    elif request.max_nodes is not None and cluster.backend != Backend.CELERY:
        _check(
            errors,
            "max_nodes",
            "BatchCompute runs a job's chunks as cloud jobs over its nodes: give fewer nodes "
            "instead.",
        )
    if request.chunk_size is not None and request.chunk_size < 1:
        _check(errors, "chunk_size", "Chunk size must be at least 1 frame.")
    if request.nodes is not None and request.chunk_size is not None:
        _check(errors, "chunk_size", "Give nodes or a chunk size, not both.")
    _check_chunk_seconds(request, errors)
    if refusal := scheduling.priority_refusal(request.priority, user):
        _check(errors, "priority", refusal)
    if len(request.name) > 150:
        _check(errors, "name", "The name must be at most 150 characters.")
    after = scheduling.check_after(request.after, user, errors)
    if request.movie:
        movies.check(project, cluster, errors)

    values: dict[str, Any] = {}
    try:
        values = software_parameters.coerce_values(software.parameters, request.parameters)
    except ValidationError as exc:
        errors.setdefault("parameters", []).extend(exc.messages)
    warnings: list[str] = []
    with contextlib.ExitStack() as stack:
        copies = _fetch_scenes(stack, readable)  # each scene fetched once for both checks
        readings = read_scenes(copies)  # and read once (one child process) for both
        if frames and "parameters" not in errors:
            scenes = check_scenes(
                readable, software, cluster, frames, values, force=request.force,
                copies=copies, readings=readings,
            )  # fmt: skip
            for key, problems in scenes.errors.items():
                errors.setdefault(key, []).extend(problems)
            warnings = scenes.warnings
        reports = check_dependencies(request, readable, errors, warnings, copies, readings)
    if errors:
        raise SubmissionError(errors)
    return Validated(frames, values, warnings, reports, after)


def _check_chunk_seconds(request: RenderRequest, errors: dict[str, list[Any]]) -> None:
    seconds = request.chunk_seconds
    if seconds is None:
        return
    if not 1 <= seconds <= MAX_CHUNK_SECONDS:
        _check(
            errors,
            "chunk_seconds",
            f"Chunk seconds must be between 1 and {MAX_CHUNK_SECONDS} (a day).",
        )
    elif request.nodes is not None or request.chunk_size is not None:
        _check(
            errors,
            "chunk_seconds",
            "Give chunk seconds, nodes or a chunk size, not two of them: chunk seconds "
            "size the chunks from the measured render time and use every node there is.",
        )
    elif request.cluster.backend != Backend.CELERY:
        _check(
            errors,
            "chunk_seconds",
            "Chunk seconds work on own machines only: BatchCompute runs a job's chunks as "
            "one cloud job with a fixed number of instances. Give nodes or a chunk size "
            "instead.",
        )


def _fetch_scenes(stack: contextlib.ExitStack, scenes: list[str]) -> dict[str, Path]:
    """Local copies of the .blend scenes (left out: one too big to fetch, or gone: the
    checks say so themselves)."""
    copies: dict[str, Path] = {}
    for url in scenes:
        if url.lower().endswith(".blend"):
            try:
                copies[url] = stack.enter_context(local_copy(url))
            except FactsError:
                continue
    return copies


def check_dependencies(
    request: RenderRequest,
    scenes: list[str],
    errors: dict[str, list[Any]],
    warnings: list[str],
    copies: dict[str, Path] | None = None,
    readings: dict[str, SceneReading] | None = None,
) -> dict[str, DependencyReport]:
    """Each .blend scene's files: missing or unreachable ones refuse the submission, naming
    them, unless the request accepts rendering without them (then they are warnings)."""
    reports: dict[str, DependencyReport] = {}
    for url in scenes:
        if not url.lower().endswith(".blend"):
            continue
        local = (copies or {}).get(url)
        reading = (readings or {}).get(url)
        report = reports[url] = analyse_scene(request.project, url, local=local, reading=reading)
        warnings.extend(report.warnings)
        if not report.problems:
            continue
        label = posixpath.basename(storage.resolve(url)[1])
        text = f"{label} needs files that are not where it looks: {report.problem_text()}"
        if request.allow_missing:
            warnings.append(f"{text}. Rendering without them, as asked.")
            continue
        message = (
            f"{text}. Put them in the project's storage keeping the scene's folder layout (or "
            "name the artists' paths on a mapping), or accept rendering without them (Blender "
            "paints a missing texture magenta)."
        )
        errors.setdefault("scenes", []).append(ValidationError(message, code=MISSING_FILES))
    return reports


def _chunks(request: RenderRequest, job: RenderJob, frames: list[int]) -> list[list[int]]:
    if job.chunk_seconds:
        return chunking.plan(frames, chunking.sizing_for(job, frames))
    if request.chunk_size:
        return split_by_size(frames, request.chunk_size)
    return split_even(frames, request.nodes or request.cluster.desired_nodes or 1)


def submit_render(request: RenderRequest, user: User | None = None) -> Submitted:
    """Validate, then create a RenderJob per scene with its Tasks and Frames; dispatch on commit.

    Returns the jobs, a list that also carries the submission's ``warnings``."""
    checked = validate_render(request, user)
    frames, values = checked.frames, checked.values
    jobs: list[RenderJob] = []
    with transaction.atomic():
        first = None
        for scene in request.scenes:
            stem = posixpath.splitext(posixpath.basename(scene))[0]
            job = RenderJob.objects.create(
                project=request.project,
                software=request.software,
                cluster=request.cluster,
                submitted_by=user,
                name=(request.name or stem)[:200],
                scene_url=scene,
                frame_spec=request.frames,
                frame_count=len(frames),
                node_count=request.nodes or request.cluster.desired_nodes or 1,
                chunk_size=request.chunk_size,
                chunk_seconds=request.chunk_seconds
                or chunking.default_chunk_seconds(
                    request.cluster.backend, request.nodes, request.chunk_size
                ),
                max_nodes=request.max_nodes,
                parameters=values,
                priority=request.priority,
                test_frame_first=request.test_frame_first and len(frames) > 1,
                warnings=checked.warnings,
                output_url="",
                **({"submission": first.submission} if first else {}),
            )
            first = first or job
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60] or "job"
            # A random part: a reinstall counting job ids from 1 again must not write into
            # (and overwrite) an earlier install's folder in the same storage.
            folder = f"{job.pk}-{slug}-{secrets.token_hex(3)}/"
            job.output_url = storage.join(request.project.output_prefix, folder)
            try:  # what a node fetches for this scene, fixed now (jobs/scene_manifest.py)
                job.scene_files = scene_manifest.prepare(job, checked.dependencies.get(scene))
            except scene_manifest.ManifestError as exc:
                raise SubmissionError({"scenes": [str(exc)]}) from None
            job.save(update_fields=["output_url", "scene_files"])
            _create_tasks(job, request, frames)
            scheduling.wait_after(job, checked.after)
            if request.movie:
                movies.add(job, user)
            jobs.append(job)
            transaction.on_commit(functools.partial(enqueue_dispatch, job.pk))
    log.info("submitted jobs %s (%d frames each)", [j.pk for j in jobs], len(frames))
    for warning in checked.warnings:
        log.info("submission warning for jobs %s: %s", [j.pk for j in jobs], warning)
    return Submitted(jobs, checked.warnings)


def _create_tasks(job: RenderJob, request: RenderRequest, frames: list[int]) -> None:
    chunks: list[tuple[list[int], bool]] = []
    if job.test_frame_first:
        chunks.append(([frames[0]], True))
        chunks += [(c, False) for c in _chunks(request, job, frames[1:])]
    else:
        chunks = [(c, False) for c in _chunks(request, job, frames)]
    held = job.test_frame_first
    tasks = Task.objects.bulk_create(
        Task(
            job=job,
            index=i,
            frames=chunk,
            is_test=is_test,
            state=TaskState.HELD if held and not is_test else TaskState.QUEUED,
            max_attempts=settings.RENDER_TASK_MAX_ATTEMPTS,
        )
        for i, (chunk, is_test) in enumerate(chunks)
    )
    if not all(t.pk for t in tasks):  # SQLite before 3.35 cannot return ids from bulk inserts
        tasks = list(job.tasks.order_by("index"))
    Frame.objects.bulk_create(
        (Frame(job=job, task=task, number=n) for task in tasks for n in task.frames),
        batch_size=2000,
    )
