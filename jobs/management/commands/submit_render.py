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
from jobs import dependencies, scene_upload, services
from jobs.choices import TERMINAL_JOB_STATES, JobState
from jobs.cli import job_id
from jobs.forms import parse_param_lines
from jobs.framespec import FrameSpecError, parse_frame_spec
from jobs.models import RenderJob
from jobs.scene_checks import OUTSIDE_RANGE, check_scenes
from jobs.scene_upload import ScenePackage
from jobs.submission import MISSING_FILES
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
        "Submit a render job per scene. A local scene is uploaded first with exactly the "
        "files it needs (textures, libraries, sequences…), laid out as below their common "
        "folder, into a new folder of the project's first storage mapping: "
        "uploads/<time>-<random>/<folder>/. Files a scene needs that are missing or "
        "unreachable refuse the submission unless --allow-missing; --check only lists them."
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
        parser.add_argument("--frames", metavar="SPEC", help="e.g. 1-48, 1-100x5 (required)")
        parser.add_argument("--software", metavar="NAME", help="Default: the image's only one.")
        parser.add_argument(
            "--cluster", metavar="NAME", help="Default: the only active cluster (or 'local')."
        )
        parser.add_argument("--nodes", type=int, metavar="N", help="Spread frames over N nodes.")
        parser.add_argument("--chunk", type=int, metavar="N", help="Or: N frames per chunk.")
        parser.add_argument(
            "--chunk-seconds",
            type=int,
            metavar="N",
            help="Or: adaptive chunks of about N seconds of measured render time each, the "
            "work left re-split as frames finish so the last chunks end together (own "
            "machines). Without --nodes or --chunk this is the default, with "
            "RENDER_CHUNK_SECONDS.",
        )
        parser.add_argument(
            "--max-nodes",
            type=int,
            metavar="N",
            help="At most N chunks of the job run at once (own machines).",
        )
        parser.add_argument(
            "--param", action="append", default=[], metavar="K=V", help="Software parameter."
        )
        parser.add_argument("--priority", type=int, default=0, help="-100..100, higher first.")
        parser.add_argument(
            "--test-frame", action="store_true", help="Render the first frame alone first."
        )
        parser.add_argument("--name", default="", help="Job name (default: the scene's name).")
        parser.add_argument(
            "--after",
            type=job_id,
            action="append",
            default=[],
            metavar="ID",
            help="Start when job ID has finished (repeat for several).",
        )
        parser.add_argument(
            "--movie",
            action="store_true",
            help="Also make a preview movie (H.264 MP4) of each job's frames when it finishes.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Render frames outside the scene's frame range anyway (refused without it).",
        )
        parser.add_argument(
            "--allow-missing",
            action="store_true",
            help="Render although files the scenes need are missing or unreachable.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only list the files each scene needs and their state; exit 1 when any is "
            "missing or unreachable. Nothing is uploaded or submitted.",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Show progress until every job has ended."
        )
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli.resolve_user(options["as_user"])
        project = get_project(options["project"], user)
        if options["check"]:
            self.list_dependencies(project, options["scene"])
            return
        if not options["frames"]:
            raise CommandError("Give the frames to render with --frames, e.g. --frames 1-48.")
        request = services.RenderRequest(
            project=project,
            software=self.pick_software(project, options["software"], options["scene"]),
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
            allow_missing=options["allow_missing"],
            after=options["after"],
            movie=options["movie"],
            max_nodes=options["max_nodes"],
            chunk_seconds=options["chunk_seconds"],
        )
        urls = [s for s in options["scene"] if "://" in s]
        local = [Path(s).expanduser() for s in options["scene"] if "://" not in s]
        package = self.preflight(request, urls, local, user) if local else None
        request.scenes = [*urls, *(self.upload(project, package) if package else [])]
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
            for movie in job.movies.all():
                self.stdout.write(f"#{movie.pk} {movie.name}  after #{job.pk}")
        if options["wait"]:
            self.wait(jobs)

    # --- choosing ---------------------------------------------------------------------

    def pick_software(self, project: Project, name: str | None, scenes: list[str]) -> Software:
        """The software named, else the image's only one that opens the scenes given (the
        built-in ffmpeg, which makes preview movies, opens no .blend)."""
        available = list(project.image.software.all())
        names = ", ".join(s.name for s in available) or "none"
        if name:
            match = next((s for s in available if s.name == name), None)
            if match is None:
                raise CommandError(
                    f"Image {project.image} has no software named {name!r} (choose from: {names})."
                )
            return match
        fitting = [s for s in available if all(s.accepts_scene(scene) for scene in scenes)]
        # None opens them all: the one that opens some (the submit check names the others).
        fitting = fitting or [s for s in available if any(map(s.accepts_scene, scenes))]
        if len(fitting) != 1:
            which = ", ".join(s.name for s in fitting) if fitting else names
            raise CommandError(
                f"Image {project.image} has {'several' if fitting else 'no'} software for "
                f"these scenes ({which}); choose one with --software."
            )
        return fitting[0]

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

    def list_dependencies(self, project: Project, scenes: list[str]) -> None:
        """Print each scene's files and their state; CommandError when any is a problem."""
        problems = 0
        for scene in scenes:
            if "://" in scene:
                try:  # only scenes inside the project's mappings are read
                    [report] = dependencies.check_scene_files(project, [scene])
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
            elif not (path := Path(scene).expanduser()).is_file():
                raise CommandError(f"{path} is not a file.")
            else:
                report = dependencies.analyse_scene(project, path)
            self.stdout.write(f"{scene}: {cli.plural(len(report.dependencies), 'file')} it needs")
            if report.unreadable:
                self.stdout.write(f"  its references could not be read: {report.unreadable}")
                problems += 1
            for dep in report.dependencies:
                where = f"  -> {dep.location}" if dep.location else ""
                many = f" ({len(dep.files)} files)" if len(dep.files) > 1 else ""
                self.stdout.write(f"  {dep.state:<12} {dep.kind:<14} {dep.path}{many}{where}")
            for warning in report.warnings:
                self.stderr.write(f"warning: {warning}", style_func=self.style.WARNING)
            problems += len(report.problems)
        if problems:
            raise CommandError(
                f"{cli.plural(problems, 'file')} the scenes need "
                f"{'is' if problems == 1 else 'are'} missing or unreachable (see above)."
            )

    def preflight(
        self,
        request: services.RenderRequest,
        urls: list[str],
        local: list[Path],
        user: User | None,
    ) -> ScenePackage | None:
        """Everything checked before a possibly long upload: the local scenes, their facts,
        the files they need (on this disk), and the rest of the request."""
        errors: dict[str, list[Any]] = {}
        package = None
        for path in local:
            if not path.is_file():
                errors.setdefault("scenes", []).append(f"{path} is not a file.")
            elif not request.software.accepts_scene(path.name):
                errors.setdefault("scenes", []).append(
                    f"{path.name} is not a {request.software.name} scene "
                    f"(expected {', '.join(request.software.suffixes)})."
                )
        if not request.project.mappings.exists():
            errors.setdefault("scenes", []).append(
                f"Project {request.project} has no storage mapping to upload {local[0].name} to."
            )
        if not errors:
            # The local scenes' facts, before a possibly long upload (warnings come after it).
            checked = self.check_local_scenes(request, local)
            for key, messages in checked.items():
                errors.setdefault(key, []).extend(messages)
            try:
                package = scene_upload.package_scenes(request.project, local)
            except scene_upload.UploadError as exc:
                errors.setdefault("scenes", []).append(str(exc))
            for warning in package.warnings if package else []:
                self.stderr.write(f"warning: {warning}", style_func=self.style.WARNING)
            if package is not None and package.problems:
                text = "; ".join(package.problems)
                if not request.allow_missing:
                    errors.setdefault("scenes", []).append(
                        ValidationError(
                            f"files the scenes need are not where they look: {text}.",
                            code=MISSING_FILES,
                        )
                    )
                else:
                    self.stderr.write(f"warning: rendering without: {text}")
        try:
            services.validate_render(dataclasses.replace(request, scenes=urls), user)
        except services.SubmissionError as exc:
            for key, problems in exc.error_dict.items():
                # Without URL scenes the only scene error is "choose at least one": ignore it.
                if key != "scenes" or urls:
                    errors.setdefault(key, []).extend(problems)
        if errors:
            raise CommandError(_refusal(services.SubmissionError(errors)))
        return package

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

    def upload(self, project: Project, package: ScenePackage) -> list[str]:
        """Upload the scenes and the files they need to a new folder; the scenes' URLs."""
        try:
            target = scene_upload.new_upload_folder(project, package.root.name)
            backend, prefix = storage.resolve(target)
            files = [(path, prefix + name) for path, name in package.files]
            self.stdout.write(
                f"Uploading {cli.plural(len(files), 'file')} from {package.root} to {target}"
            )
            cli.upload_files(self.stdout, backend, files)
        except (scene_upload.UploadError, storage.StorageError) as exc:
            raise CommandError(f"Could not upload {package.root}: {exc}") from None
        except OSError as exc:
            raise CommandError(f"Could not read {package.root}: {exc}") from None
        return [storage.join(target, name) for name in package.scenes.values()]

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
    if any(e.code == MISSING_FILES for errors in exc.error_dict.values() for e in errors):
        lines.append("  (--allow-missing renders without the missing files.)")
    return "The submission was refused:\n" + "\n".join(lines)
