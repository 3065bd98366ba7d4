"""What the embedded engine will ignore or change in a WDL's ``runtime`` sections, said at
submission (issue 17, item 4) instead of only in each task's log.

miniwdl runs tasks on this machine with its programs: containers are not used, cloud keys
(disks, zones, preemptible…) mean nothing, ``cpu`` and ``memory`` above the machine's are
lowered to it, Cromwell's ``continueOnReturnCode`` and 1.2's ``return_codes`` in older
WDL are not read. ``memory`` is enforced (workflows.engines.miniwdl_plugin). Values that
are expressions are judged only when they are constants.
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from typing import Any

import psutil
import WDL

CONTAINER_KEYS = ("docker", "container")
CLOUD_KEYS = (
    "disks",
    "zones",
    "preemptible",
    "bootDiskSizeGb",
    "noAddress",
    "gpuType",
    "gpuCount",
    "nvidiaDriverVersion",
    "cpuPlatform",
    "cluster",
    "mounts",
    "systemDisk",
    "dataDisk",
    "isv",
    "userData",
    "reserveOnFail",
    "autoReleaseJob",
    "queueArn",
)
DEFAULT_IMAGE = "ubuntu:22.04"  # what RenderHub's own miniwdl configuration names


def _tasks(doc: WDL.Tree.Document) -> list[WDL.Tree.Task]:
    """Every task of the document and of the documents it imports (each once)."""
    seen: set[int] = set()
    found: list[WDL.Tree.Task] = []

    def walk(document: WDL.Tree.Document) -> None:
        if id(document) in seen:
            return
        seen.add(id(document))
        found.extend(document.tasks)
        for imported in document.imports:
            if imported.doc is not None:
                walk(imported.doc)

    walk(doc)
    return found


def _constant(expr: Any) -> Any:
    literal = getattr(expr, "literal", None)
    return None if literal is None else literal.value


def _names(tasks: list[str]) -> str:
    unique = sorted(set(tasks))
    shown = ", ".join(unique[:6]) + (", …" if len(unique) > 6 else "")
    return f"task{'s' if len(unique) > 1 else ''} {shown}"


def _bytes(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB" if value >= 1 << 30 else f"{value >> 20} MiB"


def miniwdl_notes(doc: WDL.Tree.Document, options: Any) -> list[str]:
    images: dict[str, list[str]] = defaultdict(list)
    cloud: dict[str, list[str]] = defaultdict(list)
    notes: list[str] = []
    cores = multiprocessing.cpu_count()
    memory = psutil.virtual_memory().total
    defaults = options.get("default_runtime_attributes") if isinstance(options, dict) else None
    default_image = defaults.get("docker") if isinstance(defaults, dict) else None
    if isinstance(default_image, str) and default_image != DEFAULT_IMAGE:
        images[default_image].append("default_runtime_attributes")
    for task in _tasks(doc):
        runtime = task.runtime
        for key in CONTAINER_KEYS:
            if key in runtime:
                image = _constant(runtime[key])
                images[str(image) if image is not None else f"({key} expression)"].append(task.name)
        for key in CLOUD_KEYS:
            if key in runtime:
                cloud[key].append(task.name)
        if "continueOnReturnCode" in runtime:
            notes.append(
                f"continueOnReturnCode ({_names([task.name])}) is Cromwell's: miniwdl ignores "
                "it, so any other exit status than 0 fails the task (use returnCodes)."
            )
        version = task.effective_wdl_version
        if "return_codes" in runtime and version not in ("1.2", "development"):
            notes.append(
                f"return_codes ({_names([task.name])}) is WDL 1.2's; in WDL {version} miniwdl "
                "ignores it (use returnCodes)."
            )
        cpu = _constant(runtime.get("cpu"))
        if isinstance(cpu, int | float) and cpu > cores:
            notes.append(
                f"cpu {cpu:g} ({_names([task.name])}) is lowered to this machine's {cores} cores."
            )
        size = _constant(runtime.get("memory"))
        if isinstance(size, str):
            try:
                wanted = WDL._util.parse_byte_size(size)
            except ValueError:
                wanted = 0
            if wanted > memory:
                notes.append(
                    f"memory {size} ({_names([task.name])}) is lowered to this machine's "
                    f"{_bytes(memory)}."
                )
    if images:
        listed = "; ".join(f"{image} ({_names(tasks)})" for image, tasks in images.items())
        notes.insert(
            0,
            "Containers are ignored by the miniwdl engine: tasks run with this machine's "
            f"programs, not in {listed}. A tool found only in the image fails (exit 127).",
        )
    if cloud:
        keys = ", ".join(f"{key} ({_names(tasks)})" for key, tasks in sorted(cloud.items()))
        notes.insert(1 if images else 0, f"Ignored on this machine: {keys}.")
    return notes
