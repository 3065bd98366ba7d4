"""Scene facts checked at submit: frames against the scene's range, the scene a ``-S``
parameter names, a camera, and denoising against the Blender that will render it.

Blender renders whatever it is told without a word: frames outside the scene's range, the
default scene when ``-S`` names none of the file's scenes, nothing at all (and exit 0) when
denoising is on in a build without OpenImageDenoise. So the .blend file is read at submit
(``renderhub.blend.facts``) and:

- frames all outside the scene's range are refused, unless the request forces them
  (Blender can render them: the animation as it stands there); some outside: a warning;
- a scene name that is not in the file is refused, naming the file's scenes;
- no camera, or Cycles denoising on while this machine's Blender lacks OpenImageDenoise
  (own-machine clusters, whose workers run the same Blender), are warnings;
- a file that cannot be read (not a .blend, too big to fetch) is a warning saying what
  was not checked: the render itself will tell.
"""

from __future__ import annotations

import itertools
import logging
import posixpath
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError

from clusters.choices import Backend
from renderhub import storage
from renderhub.blend.blender import blender_build
from renderhub.blend.deps import SceneReading, read_scene
from renderhub.blend.facts import (
    BlendFacts,
    FactsError,
    SceneFacts,
    read_scene_facts,
    size_text,
)

from .framespec import format_frames

if TYPE_CHECKING:
    from clusters.models import Cluster
    from images.models import Software

log = logging.getLogger(__name__)

OUTSIDE_RANGE = "outside_range"  # the error code callers offer "render anyway" for
SCENE_FLAGS = ("-S", "--scene")
ENGINE_FLAGS = ("-E", "--engine")
# Any Blender 2.5+ file holds a DNA catalogue of tens of KiB: smaller is not a saved scene.
MIN_BLEND_BYTES = 1024
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class SceneCheck:
    errors: dict[str, list[ValidationError]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def error(self, key: str, message: str, code: str | None = None) -> None:
        self.errors.setdefault(key, []).append(ValidationError(message, code=code))


def parameter_after(software: Software, flags: tuple[str, ...]) -> str | None:
    """The custom parameter whose whole value follows one of ``flags`` in the command
    (``-S {blender_scene}``): the software's way to choose a scene or an engine."""
    names = {p["name"] for p in software.parameters}
    for flag, value in itertools.pairwise(software.command_template):
        match = _FIELD.fullmatch(value)
        if flag in flags and match and match.group(1) in names:
            return match.group(1)
    return None


def check_scenes(
    scenes: Sequence[str | Path],
    software: Software,
    cluster: Cluster,
    frames: list[int],
    values: dict[str, Any],
    *,
    force: bool = False,
    copies: dict[str, Path] | None = None,
    readings: dict[str, SceneReading] | None = None,
) -> SceneCheck:
    """Read each .blend scene's facts and check the request against them; ``copies`` holds
    local copies already fetched (by URL), so a scene on OSS is fetched once per submit,
    and ``readings`` what :func:`read_scenes` already read of them."""
    check = SceneCheck()
    scene_param = parameter_after(software, SCENE_FLAGS)
    engine_param = parameter_after(software, ENGINE_FLAGS)
    wanted = values.get(scene_param) if scene_param else None
    for scene_ref in scenes:
        label = _label(scene_ref)
        if not label.lower().endswith(".blend"):
            continue
        try:
            fetched = (copies or {}).get(str(scene_ref))
            with nullcontext(fetched) if fetched else local_copy(scene_ref) as path:
                facts = _facts(path, (readings or {}).get(str(scene_ref)))
        except FactsError as exc:
            check.warnings.append(
                f"{label}: its scene facts could not be read ({exc}); its frame range and "
                "scenes were not checked."
            )
            continue
        scene = _chosen_scene(check, label, facts, scene_param, wanted)
        if scene is None:
            continue
        where = f"{label}: scene {scene.name!r}"
        _check_frames(check, where, scene, frames, force)
        if scene.camera is None:
            check.warnings.append(
                f"{where} has no camera; Blender renders nothing without one "
                "(“Error: Cannot render, no camera”) unless markers bind cameras."
            )
        engine = str(values.get(engine_param) or scene.engine) if engine_param else scene.engine
        denoised = engine == "CYCLES" and scene.denoising
        if denoised and (warning := _denoiser_warning(where, software, cluster)):
            check.warnings.append(warning)
    return check


def _label(scene: str | Path) -> str:
    """The scene's file name as users know it (a URL's is percent-encoded)."""
    if isinstance(scene, Path):
        return scene.name
    try:
        return posixpath.basename(storage.resolve(scene)[1])
    except storage.StorageError:
        return posixpath.basename(scene.rstrip("/"))


def _chosen_scene(
    check: SceneCheck,
    label: str,
    facts: BlendFacts,
    param: str | None,
    wanted: Any,
) -> SceneFacts | None:
    if wanted is None or wanted == "":
        scene = facts.scene()
        if scene is None:
            check.warnings.append(f"{label} holds no scene; its frames were not checked.")
        return scene
    scene = facts.scene(str(wanted))
    if scene is None:
        names = ", ".join(repr(n) for n in facts.names) or "none"
        check.error(
            "parameters",
            f"{label} has no scene {str(wanted)!r} ({param}); its scenes are: {names}. "
            "Blender would render its default scene instead.",
        )
    return scene


def _check_frames(
    check: SceneCheck, where: str, scene: SceneFacts, frames: list[int], force: bool
) -> None:
    outside = [f for f in frames if not scene.frame_start <= f <= scene.frame_end]
    if not outside:
        return
    which = "all frames" if len(outside) == len(frames) else "frames"
    text = (
        f"{where}: {which} {format_frames(outside)} outside its frame range "
        f"{scene.frame_start}-{scene.frame_end}"
    )
    if len(outside) == len(frames) and not force:
        check.error(
            "frames",
            f"{text}. Choose frames in the range, or render them anyway (Blender renders the "
            "animation as it stands at those frames).",
            code=OUTSIDE_RANGE,
        )
    else:
        check.warnings.append(f"{text}; Blender renders them anyway.")


def _denoiser_warning(where: str, software: Software, cluster: Cluster) -> str | None:
    """Only own machines run the Blender installed here; a cloud image has its own."""
    if cluster.backend != Backend.CELERY or not software.command_template:
        return None
    build = blender_build(str(software.command_template[0]))
    if build is None or build.openimagedenoise is not False:
        return None
    return (
        f"{where} has Cycles denoising on, but this machine's Blender {build.version} is "
        "built without OpenImageDenoise: its frames would fail with “Build without "
        "OpenImageDenoiser”. Turn Denoise off in the scene's render settings (and its view "
        "layers'), or render on nodes whose Blender has it."
    )


def read_scenes(copies: dict[str, Path]) -> dict[str, SceneReading]:
    """Each fetched scene's facts and references, read in one child process per scene (the
    facts' and the dependencies' checks both use them); where the reading failed, both
    say why (a hostile file costs one timeout, not two)."""
    readings: dict[str, SceneReading] = {}
    for url, path in copies.items():
        try:
            readings[url] = read_scene(
                path,
                timeout=settings.SCENE_FACTS_TIMEOUT,
                max_bytes=settings.SCENE_FACTS_MAX_BYTES,
                max_memory=settings.SCENE_FACTS_MAX_MEMORY,
            )
        except FactsError as exc:
            readings[url] = SceneReading({"error": str(exc)}, {"error": str(exc)})
    return readings


def _facts(path: Path, reading: SceneReading | None = None) -> BlendFacts:
    size = path.stat().st_size if path.exists() else 0
    if 0 < size < MIN_BLEND_BYTES:
        raise FactsError(f"{size} bytes is too small for a saved .blend file")
    if reading is not None:
        return reading.facts()
    return read_scene_facts(
        path,
        timeout=settings.SCENE_FACTS_TIMEOUT,
        max_bytes=settings.SCENE_FACTS_MAX_BYTES,
        max_memory=settings.SCENE_FACTS_MAX_MEMORY,
    )


@contextmanager
def local_copy(url: str | Path) -> Iterator[Path]:
    """The scene as a local file: itself (a local path, or on local storage), else a
    temporary copy of at most SCENE_FACTS_MAX_DOWNLOAD bytes."""
    if isinstance(url, Path):
        yield url
        return
    try:
        backend, key = storage.resolve(url)
        local = backend.local_path(key)
        if local is not None:
            yield local
            return
        size = backend.stat(key).size or 0
    except storage.StorageError as exc:
        raise FactsError(str(exc)) from None
    limit = settings.SCENE_FACTS_MAX_DOWNLOAD
    if size > limit:
        raise FactsError(
            f"it is {size_text(size)}, over SCENE_FACTS_MAX_DOWNLOAD ({size_text(limit)}) "
            "to fetch from storage"
        )
    with tempfile.TemporaryDirectory(prefix="renderhub-scene-") as tmp:
        path = Path(tmp) / "scene.blend"
        try:
            backend.download_file(key, path)
        except storage.StorageError as exc:
            raise FactsError(f"could not fetch it: {exc}") from None
        yield path
