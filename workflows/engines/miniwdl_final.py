"""Cromwell's ``final_*`` options on the embedded engine (issue 17, item 6).

What Cromwell does at the end of a run, done the same way after miniwdl's run (the folders
were checked to be in the project's storage at submission, workflows.access):

* ``final_workflow_outputs_dir``: the outputs copied there, as
  ``<dir>/<workflow>/<run id>/<output>/<file>``; with ``use_relative_output_paths`` as
  their path in the task's working folder (``<dir>/<file>``), two outputs with one name
  failing the run as in Cromwell;
* ``final_call_logs_dir``: each call's stdout and stderr, as
  ``<dir>/<workflow>/<run id>/<call folder>/stdout.txt``;
* ``final_workflow_log_dir``: miniwdl's log of the run, as ``<dir>/workflow.<run id>.log``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from renderhub import storage

from .. import access

if TYPE_CHECKING:
    from ..models import WorkflowRun
    from .miniwdl_calls import RunDirReader


class FinalCopyError(Exception):
    """The outputs could not be put where the options asked (the run fails with this)."""


def _folder(run: WorkflowRun, key: str) -> str:
    value = (run.options or {}).get(key)
    if not isinstance(value, str) or not value:
        return ""
    url = access.as_url(value)
    return url if url.endswith("/") else url + "/"


def relative_name(real: Path, miniwdl_dir: Path) -> str:
    """A file's path in its task's working folder (Cromwell's relative output path)."""
    try:
        parts = real.relative_to(miniwdl_dir).parts
    except ValueError:
        return real.name
    for index, part in enumerate(parts):
        if part == "work" or part.startswith("work.attempt"):
            return "/".join(parts[index + 1 :]) or real.name
    return real.name


def copy_outputs(
    run: WorkflowRun, files: list[tuple[Path, str]], miniwdl_dir: Path, beat: Callable[..., Any]
) -> None:
    """``files``: (real path, name below miniwdl's ``out/``) of every output file."""
    folder = _folder(run, "final_workflow_outputs_dir")
    if not folder:
        return
    relative = (run.options or {}).get("use_relative_output_paths") is True
    targets: dict[str, Path] = {}
    for real, name in files:
        target = relative_name(real, miniwdl_dir) if relative else f"{_base(run)}/{name}"
        if (known := targets.get(target)) is not None and known != real:
            raise FinalCopyError(
                f"use_relative_output_paths: two outputs would both be {target} in "
                f"{folder} ({known.name} and {real.name})."
            )
        targets[target] = real
    try:
        backend, prefix = storage.resolve(folder)
        for target, real in sorted(targets.items()):
            backend.upload_file(real, prefix + target, progress=beat)
    except storage.StorageError as exc:
        raise FinalCopyError(f"Copying the outputs to {folder} failed: {exc}") from None


def copy_logs(run: WorkflowRun, reader: RunDirReader) -> None:
    """The call logs and the run's log, where the options ask (nothing if they do not)."""
    if folder := _folder(run, "final_call_logs_dir"):
        backend, prefix = storage.resolve(folder)
        for call in reader.call_folders():
            for path in sorted(reader.path(call).glob("std*.txt")):
                if path.is_file() and not path.is_symlink():
                    backend.upload_file(path, f"{prefix}{_base(run)}/{call}/{path.name}")
    if folder := _folder(run, "final_workflow_log_dir"):
        backend, prefix = storage.resolve(folder)
        name = "task.log" if reader.task_only else "workflow.log"
        if (log := reader.dir / name).is_file():
            backend.upload_file(log, f"{prefix}workflow.{run.pk}.log")


def _base(run: WorkflowRun) -> str:
    return f"{run.workflow_name or 'workflow'}/{run.pk}"
