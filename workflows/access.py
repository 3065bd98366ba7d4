"""What a workflow may touch: who may run on this machine, and which storage a run owns.

Project members are trusted with their projects' storage, not with the machine (issue 11):

* the embedded engine runs task commands on a worker, so submitting to it needs the
  ``workflows.run_on_host`` permission (superusers have every permission);
* File and Directory inputs, and the Cromwell options that name folders (``final_*``),
  must lie in the project's storage: its output prefix or one of its mappings;
* a run's outputs get signed links only when they lie in the run's own folders, whatever
  an engine or a task's ``String`` output claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from renderhub import storage

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from projects.models import Project

    from .models import WorkflowRun

RUN_ON_HOST = "workflows.run_on_host"
RUN_ON_HOST_REFUSED = (
    "Running workflows on this machine (the miniwdl engine) needs the permission "
    "“Can run workflows on this machine” (workflows.run_on_host), which you do not have. "
    "Ask an administrator for it, or submit to a Cromwell engine."
)
# Cromwell's workflow options that name where it copies outputs and logs at the end.
PATH_OPTION_PREFIX = "final_"


def may_run_on_host(user: User | AnonymousUser) -> bool:
    return bool(user.is_active and user.has_perm(RUN_ON_HOST))


def project_prefixes(project: Project) -> list[str]:
    return [p for p in [project.output_prefix, *(m.source for m in project.mappings.all())] if p]


def _inside(prefixes: list[str], url: str) -> bool:
    try:
        return any(storage.is_prefix_of(prefix, url) for prefix in prefixes)
    except storage.StorageError:  # not a storage URL, or one with '..' in it
        return False


def in_project(project: Project, url: str) -> bool:
    """Whether ``url`` is a storage URL in the project's output prefix or mappings."""
    return _inside(project_prefixes(project), url)


def as_url(value: str) -> str:
    """A storage URL for an engine's path: absolute paths become file:// URLs."""
    if value.startswith("/"):
        return PurePosixPath(value).as_uri()
    return value


def file_input_problems(project: Project, files: list[str]) -> list[str]:
    """File/Directory input values that are not storage URLs of this project."""
    problems = []
    for value in files:
        if "://" not in value:
            problems.append(
                f"{value}: File inputs must be storage URLs (file:// or oss://) in this "
                "project's storage, not paths."
            )
        elif not in_project(project, value):
            problems.append(
                f"{value} is outside this project's storage (its output prefix and mappings)."
            )
        else:
            try:
                storage.resolve(value)
            except storage.StorageError as exc:
                problems.append(f"{value}: {exc}")
    return problems


def path_option_problems(project: Project, options: Any) -> list[str]:
    """``final_*`` options (Cromwell's output and log folders) outside the project's storage.

    Allowed inside the project (a lab's options file may send outputs to a mapped folder);
    anywhere else Cromwell would write, with its own rights, into another project's folders.
    """
    if not isinstance(options, dict):
        return []
    problems = []
    for key, value in options.items():
        if not (isinstance(key, str) and key.startswith(PATH_OPTION_PREFIX)):
            continue
        if not isinstance(value, str) or not value:
            problems.append(f"{key} must be a folder in this project's storage.")
            continue
        url = as_url(value)
        try:
            storage.resolve(url)
            inside = in_project(project, url)
        except storage.StorageError:
            inside = False
        if not inside:
            problems.append(
                f"{key}: {value} is outside this project's storage (its output prefix and "
                "mappings); leave it out to use the run's folders, or name a folder inside it."
            )
    return problems


def run_owns(run: WorkflowRun, url: str) -> bool:
    """Whether ``url`` is in the run's outputs or working folder (so it may be linked)."""
    return _inside([p for p in (run.outputs_dir, run.working_dir) if p], url)


@dataclass
class OutputFile:
    name: str  # the workflow output, with [i] for array elements
    url: str


def output_files(run: WorkflowRun) -> tuple[list[OutputFile], dict[str, Any]]:
    """(files in the run's own folders, the other output values).

    Only storage URLs inside the run's outputs or working folder are files (and get signed
    links): a task's ``String`` output or an engine may name any URL, another project's
    files included. An output naming anything else is shown as a value, as text.
    """
    files: list[OutputFile] = []
    values: dict[str, Any] = {}

    def walk(name: str, value: Any) -> bool:  # whether it names a URL the run does not own
        if isinstance(value, str) and value.startswith(("file://", "oss://")):
            if run_owns(run, value):
                files.append(OutputFile(name, value))
                return False
            return True
        if isinstance(value, list):
            return any([walk(f"{name}[{i}]", item) for i, item in enumerate(value)])
        if isinstance(value, dict):
            return any([walk(f"{name}.{key}", item) for key, item in value.items()])
        return False

    for name, value in sorted((run.outputs or {}).items()):
        count = len(files)
        foreign = walk(name, value)
        if len(files) == count or foreign:  # a plain value, or one naming others' files
            values[name] = value
    return files, values
