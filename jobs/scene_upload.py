"""Uploading local scenes with exactly the files they need (``submit_render --scene PATH``,
``upload SCENE.blend URL``).

A scene and the files it references (``dependencies.analyse_scene`` on this disk: textures
in sibling folders, libraries and their own textures, sequences) go up together, laid out
as they are below their common folder, so every relative path still holds; files no scene
uses (``.blend1`` backups, notes) stay home. ``submit_render`` puts each submission in a
folder of its own, so a later upload of a folder with the same name never touches an
earlier job's files; ``upload`` refuses to overwrite a file an unfinished job uses.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from projects.models import Project
from renderhub import cli, storage

from . import scene_manifest
from .choices import TERMINAL_JOB_STATES
from .dependencies import FOUND, DependencyReport, analyse_scene
from .models import RenderJob


class UploadError(Exception):
    """The scenes cannot be uploaded as asked; the message says why."""


@dataclass
class ScenePackage:
    root: Path  # the folder the layout is kept relative to
    scenes: dict[Path, str] = field(default_factory=dict)  # scene -> its name below root
    files: list[tuple[Path, str]] = field(default_factory=list)  # every file, with its name
    reports: dict[Path, DependencyReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            f"{scene.name}: {report.problem_text()}"
            for scene, report in self.reports.items()
            if report.problems
        ]


def package_scenes(project: Project | None, scenes: list[Path]) -> ScenePackage:
    """The scenes and the files on this disk they need, relative to their common folder."""
    reports = {scene.resolve(): analyse_scene(project, scene) for scene in scenes}
    local: dict[Path, None] = {}
    warnings: list[str] = []
    for scene, report in reports.items():
        local[scene] = None
        if report.unreadable:
            # What it needs is unknown: its whole folder goes, as it would by hand.
            warnings.append(
                f"{scene.name}: its references could not be read ({report.unreadable}); "
                "its whole folder is uploaded."
            )
            local.update(dict.fromkeys(path for path, _ in cli.local_files(scene.parent)))
        for dep in report.dependencies:
            if dep.state == FOUND:
                local.update(dict.fromkeys(Path(f) for f in dep.files))
    root = Path(os.path.commonpath([str(p.parent) for p in local]))
    if root == Path(root.anchor):
        raise UploadError(
            f"{', '.join(s.name for s in reports)} and the files they need share no folder "
            f"below {root}; keep a scene's files in one project folder (its layout is kept)."
        )
    package = ScenePackage(root=root, reports=reports, warnings=warnings)
    package.scenes = {scene: scene.relative_to(root).as_posix() for scene in reports}
    package.files = [(path, path.relative_to(root).as_posix()) for path in local]
    return package


def new_upload_folder(project: Project, name: str) -> str:
    """A folder no earlier submission used: ``uploads/<time>-<random>/<name>/`` in the
    project's first mapping."""
    mapping = project.mappings.order_by("pk").first()
    if mapping is None:
        raise UploadError(f"Project {project} has no storage mapping to upload to.")
    stamp = f"{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    return storage.join(mapping.source, "uploads", stamp, (name or "scene") + "/")


def refuse_overwriting_used_files(files: list[tuple[Path, str]], backend: storage.Storage) -> None:
    """UploadError when a key of ``files`` holds a file an unfinished job renders from."""
    existing = [backend.url_for(key) for _, key in files if backend.exists(key)]
    used = files_in_use(existing) if existing else {}
    if used:
        names = "; ".join(
            f"{url} (job #{job.pk}, {job.state})" for url, job in sorted(used.items())[:10]
        )
        raise UploadError(
            f"{len(used)} of these files would overwrite files unfinished jobs render from: "
            f"{names}. Upload to a new folder, or wait until those jobs end."
        )


def files_in_use(urls: list[str]) -> dict[str, RenderJob]:
    """Which of ``urls`` an unfinished job renders from (its scene or a file it needs, as
    its manifest lists them, a rewritten copy and its original alike), comparing stored
    files, not spellings of URLs."""
    wanted = {key: url for url in urls if (key := scene_manifest.canonical(url))}
    used: dict[str, RenderJob] = {}
    jobs = RenderJob.objects.exclude(state__in=TERMINAL_JOB_STATES)
    for job in jobs.only("pk", "state", "scene_url", "scene_files", "project").order_by("pk"):
        files = [job.scene_url, *scene_manifest.originals(job.scene_files)]
        # ...and the rewritten copies in its output folder, which nodes fetch instead.
        files += [f["url"] for f in (job.scene_files or {}).get("files", []) if "source" in f]
        if job.scene_files is None:  # submitted before manifests: read its scene now
            files += analyse_scene(job.project, job.scene_url).files()
        for url in files:
            if (key := scene_manifest.canonical(url)) in wanted:
                used.setdefault(wanted[key], job)
    return used
