"""The embedded engine's files: its configuration (sandbox included), staged inputs, outputs.

Task commands run in the sandbox of ``renderhub.agent.sandbox`` (set up by the plugin in
``miniwdl_plugin/``, which must not import Django: it gets the settings through the
``[renderhub]`` section of miniwdl's configuration written here). What a task leaves in
its folder is then read by the worker with the worker's rights, so nothing a task made
is followed out of the output miniwdl checked (:func:`published_files`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from renderhub import storage
from renderhub.sandbox_paths import extra_read_paths

from .base import EngineError

log = logging.getLogger(__name__)

BACKEND = "renderhub_host"


def cache_dir(project_id: int | None) -> Path:
    """A project's call cache: runs reuse calls of their own project's runs only."""
    return Path(settings.WORKFLOW_WORK_DIR) / "call_cache" / f"project-{project_id or 0}"


def miniwdl_config(
    options: dict[str, Any], input_roots: list[str] | None = None, project_id: int | None = None
) -> str:
    """miniwdl's configuration for a run; Cromwell-style options mapped where they apply.

    ``input_roots``: where task inputs may come from besides the workflow folders (the
    run's staged inputs that are files in local storage); the plugin refuses others.
    """
    defaults = {"docker": "ubuntu:22.04"}  # ignored by the host backend, but miniwdl wants it
    runtime = options.get("default_runtime_attributes")
    if isinstance(runtime, dict):
        defaults.update(runtime)
    roots = [str(Path(settings.WORKFLOW_WORK_DIR).resolve()), *(input_roots or [])]
    lines = [
        "[scheduler]",
        f"container_backend = {BACKEND}",
        "scatter_tag_max = 0",  # call folders are call-<name>-<index>, easy to read back
        "",
        "[file_io]",
        "allow_any_input = false",  # only the declared inputs, never a path a WDL makes up
        "",
        "[call_cache]",
        f"get = {'false' if options.get('read_from_cache') is False else 'true'}",
        f"put = {'false' if options.get('write_to_cache') is False else 'true'}",
        f"dir = {cache_dir(project_id)}",
        "",
        "[task_runtime]",
        f"defaults = {json.dumps(defaults)}",
        "",
        "[renderhub]",
        f"sandbox = {settings.WORKFLOW_SANDBOX}",
        f"network = {'true' if settings.WORKFLOW_TASK_NETWORK else 'false'}",
        f"read_only = {json.dumps(extra_read_paths())}",
        f"input_roots = {json.dumps(roots)}",
        f"workflow_dir = {Path(settings.WORKFLOW_WORK_DIR).resolve()}",
        f"max_file_size = {int(settings.RENDER_MAX_FILE_SIZE)}",
        f"max_processes = {int(settings.RENDER_MAX_PROCESSES)}",
        f"max_memory = {int(settings.RENDER_MAX_MEMORY)}",
        "",
    ]
    return "\n".join(lines)


def stage(url: str, target: Path, beat: Callable[..., None]) -> Path:
    """A local path holding the storage object or folder ``url`` (downloaded if remote)."""
    try:
        backend, key = storage.resolve(url)
        is_dir = url.endswith("/") or (not backend.exists(key) and any(backend.walk(key + "/")))
        if not is_dir:
            if (local := backend.local_path(key)) is not None and local.is_file():
                return local
            destination = target / Path(key).name
            backend.download_file(key, destination, progress=beat)
            return destination
        prefix = key.rstrip("/") + "/"
        if (local := backend.local_path(prefix)) is not None and local.is_dir():
            return local
        destination = target / Path(prefix.rstrip("/")).name
        for entry in backend.walk(prefix):
            backend.download_file(
                entry.key, destination / entry.key.removeprefix(prefix), progress=beat
            )
        return destination
    except storage.NotFound:
        raise EngineError(f"The input {url} does not exist.") from None
    except storage.StorageError as exc:
        raise EngineError(f"The input {url} could not be staged: {exc}") from None


def published_files(out: Path) -> Iterator[tuple[Path, str]]:
    """(real path, name below ``out/``) of every file of miniwdl's ``out/`` folder.

    ``out/`` holds miniwdl's links to the outputs it checked (inside the task's folder).
    A task can still leave a symlinked *folder* inside a Directory output, pointing at
    anything on the worker (miniwdl checks only file links): below each output, a link
    that leads out of that output is skipped, and each real folder is read once (no loops).
    """

    def walk(folder: Path, prefix: str, output: Path | None, seen: set[Path]) -> Iterator[Any]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            real = Path(os.path.realpath(entry.path))
            # The first link on the way down is miniwdl's, to the output it checked.
            root = output if output is not None or not entry.is_symlink() else real
            if root is not None and not real.is_relative_to(root):
                log.warning("skipped %s: it leads out of its output (to %s)", entry.path, real)
                continue
            if real.is_dir():
                if real not in seen:
                    yield from walk(real, f"{prefix}{entry.name}/", root, seen | {real})
            elif real.is_file():
                yield real, prefix + entry.name

    yield from walk(out, "", None, set())
