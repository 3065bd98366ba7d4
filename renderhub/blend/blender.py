"""What this machine's Blender was built with, asked of Blender itself, once per process.

Debian's Blender is built without OpenImageDenoise: a Cycles scene with denoising on
renders nothing there and says only "Error: Build without OpenImageDenoiser". Cycles'
own Python module states it (``_cycles.with_openimagedenoise``), so we ask Blender
rather than guess from its version or distribution.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

TIMEOUT = 60.0  # Blender starts in about a second; a busy machine is slower
_ANSWER = re.compile(r"^RENDERHUB_BUILD version=(\S+) oidn=(True|False|None)$", re.MULTILINE)
_PROBE = (
    "import bpy, _cycles; "
    "print('RENDERHUB_BUILD version=%s oidn=%s' % (bpy.app.version_string.split()[0], "
    "getattr(_cycles, 'with_openimagedenoise', None)))"
)


@dataclass(frozen=True)
class BlenderBuild:
    path: str
    version: str
    openimagedenoise: bool | None  # None: this Blender does not say


_builds: dict[str, BlenderBuild] = {}


def blender_build(executable: str = "blender") -> BlenderBuild | None:
    """The build of ``executable`` (a name on PATH or a path); None when it is not here or
    does not answer. An answer is kept for the life of the process; a failure (a machine
    too busy to start Blender in time) is asked again next time."""
    path = shutil.which(executable)
    if path is None:
        return None
    if path not in _builds and (build := _probe(path)) is not None:
        _builds[path] = build
    return _builds.get(path)


# Blender would write its modules' bytecode beside their sources: as root, into the install.
QUIET_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _probe(path: str) -> BlenderBuild | None:
    argv = [path, "-b", "--factory-startup", "-noaudio", "--python-expr", _PROBE]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            errors="replace",
            env=QUIET_ENV,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not ask %s how it was built: %s", path, exc)
        return None
    match = _ANSWER.search(proc.stdout)
    if match is None:
        log.warning("%s did not say how it was built (exit status %s)", path, proc.returncode)
        return None
    oidn = {"True": True, "False": False}.get(match.group(2))
    return BlenderBuild(path=path, version=match.group(1), openimagedenoise=oidn)
