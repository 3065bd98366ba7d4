"""Submit a render: ``manage.py submit_render --project P --scene S --frames 1-48 [--wait]``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters.choices import ClusterState
from clusters.models import Cluster
from images.models import Software
from images.parameters import coerce_values
from jobs import services
from jobs.choices import TERMINAL_JOB_STATES, JobState
from jobs.forms import parse_param_lines
from jobs.framespec import FrameSpecError, parse_frame_spec
from jobs.models import RenderJob
from jobs.scene_checks import OUTSIDE_RANGE, check_scenes
from projects.cli import get_project
from projects.models import Project
from renderhub import cli, storage

if TYPE_CHECKING:
    from django.contrib.auth.models import User

POLL_INTERVAL = 0.5  # seconds between reads of the job rows while --wait shows progress


def _pause() -> None:
    time.sleep(POLL_INTERVAL)


class Command(BaseCommand):
    help = (
        "Submit a render job per scene. A local scene path is uploaded first (its whole "
        "folder, so relative texture paths keep working) to the project's first storage "
        "mapping under uploads/<folder>/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument(
            "--scene",
            action="append",
            required=True,
            metavar="URL_OR_PATH",
            help="Scene URL (file:// or oss://) or a local file; repeat for several scenes.",
        )
        parser.add_argument("--frames", required=True, metavar="SPEC", help="e.g. 1-48, 1-100x5")
        parser.add_argument("--software", metavar="NAME", help="Default: the image's only one.")
        parser.add_argument(
            "--cluster", metavar="NAME", help="Default: the only active cluster (or 'local')."
        )
        parser.add_argument("--nodes", type=int, metavar="N", help="Spread frames over N nodes.")
        parser.add_argument("--chunk", type=int, metavar="N", help="Or: N frames per chunk.")
        parser.add_argument(
            "--param", action="append", default=[], metavar="K=V", help="Software parameter."
        )
        parser.add_argument("--priority", type=int, default=0, help="-100..100, higher first.")
        parser.add_argument(
            "--test-frame", action="store_true", help="Render the first frame alone first."
        )
        parser.add_argument("--name", default="", help="Job name (default: the scene's name).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Render frames outside the scene's frame range anyway (refused without it).",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Show progress until every job has ended."
        )
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli.resolve_user(options["as_user"])
        project = get_project(options["project"], user)
        request = services.RenderRequest(
            project=project,
            software=self.pick_software(project, options["software"]),
            cluster=self.pick_cluster(project, options["cluster"]),
            scenes=[],
            frames=options["frames"],
            nodes=options["nodes"],
            chunk_size=options["chunk"],
            parameters=self.parse_params(options["param"]),
            priority=options["priority"],
            test_frame_first=options["test_frame"],
            name=options["name"],
            force=options["force"],
        )
        urls = [s for s in options["scene"] if "://" in s]
        local = [Path(s).expanduser() for s in options["scene"] if "://" not in s]
        if local:
            # Check everything else before a possibly long upload, not after it.
            self.preflight(request, urls, local, user)
        uploaded: dict[Path, str] = {}  # folder -> its URL; scenes sharing a folder upload once
        request.scenes = [*urls, *(self.upload_scene(project, path, uploaded) for path in local)]
        try:
            jobs = services.submit_render(request, user)
        except services.SubmissionError as exc:
            raise CommandError(_refusal(exc)) from None
        for warning in jobs.warnings:
            self.stderr.write(f"warning: {warning}", style_func=self.style.WARNING)
        for job in jobs:
            chunks = cli.plural(job.tasks.count(), "chunk")
            self.stdout.write(
                f"#{job.pk} {job.name}  {cli.plural(job.frame_count, 'frame')} in {chunks}"
                f"  -> {job.output_url}"
            )
        if options["wait"]:
            self.wait(jobs)

    # --- choosing ---------------------------------------------------------------------

    def pick_software(self, project: Project, name: str | None) -> Software:
        available = list(project.image.software.all())
        names = ", ".join(s.name for s in available) or "none"
        if name:
            match = next((s for s in available if s.name == name), None)
            if match is None:
                raise CommandError(
                    f"Image {project.image} has no software named {name!r} (choose from: {names})."
                )
            return match
        if len(available) != 1:
            raise CommandError(
                f"Image {project.image} has {'no' if not available else 'several'} software "
                f"({names}); choose one with --software."
            )
        return available[0]

    def pick_cluster(self, project: Project, name: str | None) -> Cluster:
        if name:
            # Any state: validation explains why an inactive or foreign cluster cannot run it.
            cluster = Cluster.objects.filter(name=name).first()
            if cluster is None:
                raise CommandError(f"There is no cluster named {name!r}.")
            return cluster
        active = list(Cluster.objects.filter(image=project.image, state=ClusterState.ACTIVE))
        if len(active) == 1:
            return active[0]
        local = next((c for c in active if c.name == "local"), None)
        if local is not None:
            return local
        if not active:
            raise CommandError(f"No active cluster runs image {project.image}; create one first.")
        names = ", ".join(c.name for c in active)
        raise CommandError(
            f"Several active clusters run image {project.image} ({names}); choose with --cluster."
        )

    def parse_params(self, params: list[str]) -> dict[str, str]:
        for param in params:
            if "\n" in param:
                raise CommandError(f"--param {param!r}: a value must be on one line.")
        try:
            return parse_param_lines("\n".join(params))
        except ValidationError as exc:
            bad = ", ".join(repr(p) for p in params if "=" not in p or not p.split("=")[0].strip())
            raise CommandError(f"Write parameters as --param name=value (not {bad}).") from exc

    # --- local scenes -----------------------------------------------------------------

    def preflight(
        self,
        request: services.RenderRequest,
        urls: list[str],
        local: list[Path],
        user: User | None,
    ) -> None:
        errors: dict[str, list[Any]] = {}
        for path in local:
            if not path.is_file():
                errors.setdefault("scenes", []).append(f"{path} is not a file.")
            elif not request.software.accepts_scene(path.name):
                errors.setdefault("scenes", []).append(
                    f"{path.name} is not a {request.software.name} scene "
                    f"(expected {', '.join(request.software.suffixes)})."
                )
        if not errors:
            # The local scenes' facts, before a possibly long upload (warnings come after it).
            checked = self.check_local_scenes(request, local)
            for key, messages in checked.items():
                errors.setdefault(key, []).extend(messages)
        if not request.project.mappings.exists():
            errors.setdefault("scenes", []).append(
                f"Project {request.project} has no storage mapping to upload {local[0].name} to."
            )
        try:
            services.validate_render(dataclasses.replace(request, scenes=urls), user)
        except services.SubmissionError as exc:
            for key, problems in exc.error_dict.items():
                # Without URL scenes the only scene error is "choose at least one": ignore it.
                if key != "scenes" or urls:
                    errors.setdefault(key, []).extend(problems)
        if errors:
            raise CommandError(_refusal(services.SubmissionError(errors)))

    def check_local_scenes(
        self, request: services.RenderRequest, local: list[Path]
    ) -> dict[str, list[Any]]:
        try:
            frames = parse_frame_spec(request.frames, max_frames=settings.RENDER_MAX_FRAMES_PER_JOB)
            values = coerce_values(request.software.parameters, request.parameters)
        except (FrameSpecError, ValidationError):
            return {}  # validate_render says what is wrong with them
        software, cluster = request.software, request.cluster
        return check_scenes(local, software, cluster, frames, values, force=request.force).errors

    def upload_scene(self, project: Project, scene: Path, uploaded: dict[Path, str]) -> str:
        """Copy the scene's folder into the project's storage; return the scene's URL."""
        folder = scene.resolve().parent
        if folder in uploaded:
            return storage.join(uploaded[folder], scene.resolve().relative_to(folder).as_posix())
        if folder in (Path(folder.anchor), Path.home()):
            raise CommandError(
                f"{scene} is directly in {folder}; put the scene and its textures in a folder "
                "of their own (the whole folder is uploaded)."
            )
        mapping = project.mappings.first()
        assert mapping is not None  # preflight checked
        try:
            target = storage.join(mapping.source, "uploads", folder.name + "/")
            backend, prefix = storage.resolve(target)
            files = [(path, prefix + name) for path, name in cli.local_files(folder)]
            self.stdout.write(f"Uploading {folder} ({len(files)} files) to {target}")
            cli.upload_files(self.stdout, backend, files)
            uploaded[folder] = target
            return storage.join(target, scene.resolve().relative_to(folder).as_posix())
        except storage.StorageError as exc:
            raise CommandError(f"Could not upload {folder}: {exc}") from None
        except OSError as exc:
            raise CommandError(f"Could not read {folder}: {exc}") from None

    # --- waiting ----------------------------------------------------------------------

    def wait(self, jobs: list[RenderJob]) -> None:
        ids = [job.pk for job in jobs]
        bar = cli.ProgressBar(self.stdout, sum(j.frame_count for j in jobs), unit="frames")
        try:
            while True:
                rows = list(
                    RenderJob.objects.filter(pk__in=ids).values_list(
                        "state", "frames_done", "frames_failed"
                    )
                )
                failed = sum(r[2] for r in rows)
                bar.update(sum(r[1] for r in rows), note=f"{failed} failed" if failed else "")
                if all(r[0] in TERMINAL_JOB_STATES for r in rows):
                    break
                _pause()
        except KeyboardInterrupt:
            bar.close()
            raise CommandError(
                "Stopped waiting; the jobs keep rendering (see `manage.py jobs`).", returncode=130
            ) from None
        bar.close()
        self.report(ids)

    def report(self, ids: list[int]) -> None:
        bad: list[str] = []
        for job in RenderJob.objects.filter(pk__in=ids).order_by("pk"):
            duration = cli.format_duration(job.duration)
            if job.state == JobState.FINISHED:
                self.stdout.write(
                    f"#{job.pk} {job.name} finished in {duration}  -> {job.output_url}"
                )
                continue
            bad.append(f"#{job.pk} {job.state}")
            reason = f": {job.failure_reason}" if job.failure_reason else ""
            self.stderr.write(f"#{job.pk} {job.name} {job.state}{reason}")
            if job.frames_done:
                self.stderr.write(f"  {job.frames_done} frames were rendered -> {job.output_url}")
        if bad:
            raise CommandError(f"{len(bad)} of {len(ids)} jobs did not finish: {', '.join(bad)}.")


def _refusal(exc: services.SubmissionError) -> str:
    lines = [
        f"  {key}: {message}" if key != "__all__" else f"  {message}"
        for key, messages in exc.message_dict.items()
        for message in messages
    ]
    if any(e.code == OUTSIDE_RANGE for errors in exc.error_dict.values() for e in errors):
        lines.append("  (--force renders frames outside the scene's range anyway.)")
    return "The submission was refused:\n" + "\n".join(lines)
