"""The scene on a BatchCompute node: exactly the files the job's manifest lists.

The project's mappings are mounted on the node (OSS mounts), so each file of the manifest
(jobs/scene_manifest.py) has a node path; the agent copies them into ``SCENE_DIR/job-<id>/``
before rendering (its ``inputs``), keeping their layout, so relative paths hold and the
renderer reads nothing else of the mounts. Rewritten copies of .blend files (absolute paths
from artists' machines made relative) are in the job's ``_logs/scene/`` folder, mounted at
the control folder. The folder is shared by the job's instances on one VM and the agent
skips a file already copied (same size and time), so a VM reads each file once per job.
A scene whose references could not be read at submit is rendered from its mount, as before.
"""

from __future__ import annotations

from typing import Any

from jobs import scene_manifest
from jobs.models import RenderJob
from renderhub import storage
from renderhub.compute import ComputeError

SCENE_DIR = "/renderhub/scene/"


def scene_spec(job: RenderJob, control_dir: str) -> dict[str, Any]:
    """The spec's ``scene`` (a node path) and the ``inputs`` that put it there."""
    try:
        manifest = scene_manifest.for_job(job)
    except storage.StorageError as exc:
        raise ComputeError(f"could not prepare the scene's files: {exc}") from None
    if manifest.get("folder"):
        return {"scene": node_path(job, job.scene_url, control_dir), "inputs": []}
    staged = f"{SCENE_DIR}job-{job.pk}/"
    inputs = [
        {"src": node_path(job, f["url"], control_dir), "dst": staged + f["place"]}
        for f in manifest["files"]
    ]
    return {"scene": staged + manifest["scene"], "inputs": inputs}


def node_path(job: RenderJob, url: str, control_dir: str) -> str:
    """Where ``url`` is on a node: below a mapping's mount, or the job's control folder."""
    logs = storage.join(job.output_url, "_logs/")
    if storage.is_prefix_of(logs, url):
        return control_dir + url.removeprefix(logs)
    mapping = job.project.mapping_for(url)
    if mapping is None:
        raise ComputeError(f"{url} is outside the project's storage mappings")
    source = mapping.source if mapping.source.endswith("/") else mapping.source + "/"
    return _folder(mapping.destination) + url.removeprefix(source)


def _folder(path: str) -> str:
    return path if path.endswith("/") else path + "/"
