"""The fake BatchCompute's state: jobs, tasks, instances, clusters and their VMs, the JSON
the SDK parses for each, its errors, and the base of the fake holding them (lookups,
listings with markers, idempotent creates)."""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .server import FakeError, FakeServer

TERMINAL = ("Finished", "Failed", "Stopped")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
MAX_SKEW = 15 * 60  # seconds; the docs say requests older than 15 minutes are refused


def utc_text(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else ""


def now() -> datetime:
    return datetime.now(UTC)


def alnum(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


class BCError(FakeError):
    """An error reply: ``{Code, Message, RequestId}`` with the HTTP status."""


def not_found() -> BCError:
    return BCError(404, "InvalidResource.NotFound", "Specified resource is not found.")


def conflict(state: str) -> BCError:
    return BCError(
        409, "StateConflict", f"User operation is invalid. The current resource state is {state}."
    )


@dataclass
class Instance:
    index: int
    state: str = "Waiting"
    retry_count: int = 0
    progress: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    exit_code: int = 0
    error_code: str = ""
    error_message: str = ""
    detail: str = ""
    node_ip: str = ""
    fail_attempts: int = 0  # injected: this many attempts fail before running the command
    process: subprocess.Popen[bytes] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class Task:
    name: str
    desc: dict[str, Any]
    instances: list[Instance]
    state: str = "Waiting"
    started: datetime | None = None
    ended: datetime | None = None


@dataclass
class Job:
    id: str
    desc: dict[str, Any]
    tasks: dict[str, Task]
    created: datetime
    state: str = "Waiting"
    message: str = ""
    started: datetime | None = None
    ended: datetime | None = None

    @property
    def name(self) -> str:
        return str(self.desc["Name"])

    def instances(self) -> list[tuple[Task, Instance]]:
        return [(t, i) for t in self.tasks.values() for i in t.instances]


@dataclass
class VM:
    id: str
    created: datetime
    state: str = "Pending"
    ip: str = ""
    error_code: int = 0
    error_message: str = ""


@dataclass
class Cluster:
    id: str
    desc: dict[str, Any]
    created: datetime
    desired: dict[str, int]
    vms: dict[str, list[VM]]
    state: str = "Active"
    logs: list[str] = field(default_factory=list)

    def log(self, group: str, message: str) -> None:
        self.logs.append(f"[{utc_text(now())}][{group}]{message}")


@dataclass(frozen=True)
class FakeRequest:
    method: str
    target: str  # the raw request target, as signed
    route: str  # e.g. "GET /jobs/{id}"
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


def under(root: Path, node_path: str) -> Path:
    return root / node_path.lstrip("/")


def require(body: Any, *keys: str) -> None:
    if not isinstance(body, dict):
        raise BCError(400, "InvalidHttpBody", "The request body must be a JSON object.")
    for key in keys:
        if key not in body or body[key] in ("", None):
            raise BCError(400, f"Missing{key}", f"{key} is mandatory for this action.")


def route_of(method: str, segments: list[str]) -> str:
    names = {1: "{id}", 3: "{task}", 5: "{n}"}
    if segments[:1] == ["clusters"]:
        names = {1: "{id}", 3: "{group}", 5: "{iid}"}
    shape = [names.get(i, s) if i % 2 else s for i, s in enumerate(segments)]
    return f"{method} /{'/'.join(shape)}"


def metrics(states: list[str]) -> dict[str, int]:
    return {
        f"{s}Count": states.count(s)
        for s in ("Waiting", "Running", "Finished", "Failed", "Stopped")
    }


def job_json(job: Job) -> dict[str, Any]:
    return {
        "Id": job.id,
        "Name": job.name,
        "Priority": job.desc["Priority"],
        "OwnerId": 123456,
        "State": job.state,
        "Message": job.message,
        "CreationTime": utc_text(job.created),
        "StartTime": utc_text(job.started),
        "EndTime": utc_text(job.ended),
        "TaskMetrics": metrics([t.state for t in job.tasks.values()]),
        "InstanceMetrics": metrics([i.state for _t, i in job.instances()]),
    }


def task_json(task: Task) -> dict[str, Any]:
    return {
        "TaskName": task.name,
        "State": task.state,
        "StartTime": utc_text(task.started),
        "EndTime": utc_text(task.ended),
        "InstanceMetrics": metrics([i.state for i in task.instances]),
    }


def instance_json(job: Job, task: Task, inst: Instance) -> dict[str, Any]:
    params = task.desc.get("Parameters") or {}
    name = f"{job.id}.{task.name}.{inst.index}"
    return {
        "InstanceId": inst.index,
        "State": inst.state,
        "StartTime": utc_text(inst.started),
        "EndTime": utc_text(inst.ended),
        "RetryCount": inst.retry_count,
        "Progress": inst.progress,
        "NodeIp": inst.node_ip,
        "StdoutRedirectPath": f"{params.get('StdoutRedirectPath', '')}stdout.{name}",
        "StderrRedirectPath": f"{params.get('StderrRedirectPath', '')}stderr.{name}",
        "Result": {
            "ExitCode": inst.exit_code,
            "ErrorCode": inst.error_code,
            "ErrorMessage": inst.error_message,
            "Detail": inst.detail,
        },
        "Error": {"Code": "", "Message": ""},
        "Outputs": {},
    }


def cluster_json(cluster: Cluster) -> dict[str, Any]:
    desc = cluster.desc
    groups = {}
    for name, group in desc["Groups"].items():
        alive = [vm for vm in cluster.vms[name] if vm.state == "Running"]
        groups[name] = {
            "DesiredVMCount": cluster.desired[name],
            "ActualVMCount": len(alive),
            "InstanceType": group.get("InstanceType") or desc.get("InstanceType", ""),
            "ResourceType": group.get("ResourceType", "OnDemand"),
            "SpotStrategy": group.get("SpotStrategy", ""),
            "SpotPriceLimit": group.get("SpotPriceLimit", 0.0),
        }
    vms = [vm.state for vms in cluster.vms.values() for vm in vms]
    return {
        "Id": cluster.id,
        "Name": desc["Name"],
        "OwnerId": 123456,
        "Description": desc.get("Description", ""),
        "CreationTime": utc_text(cluster.created),
        "State": cluster.state,
        "ImageId": desc["ImageId"],
        "InstanceType": desc.get("InstanceType", ""),
        "Groups": groups,
        "OperationLogs": list(cluster.logs),
        "Metrics": {
            "RunningCount": vms.count("Running"),
            "StartingCount": vms.count("Starting") + vms.count("Pending"),
            "StoppingCount": vms.count("Deleting"),
            "StoppedCount": 0,
        },
    }


def vm_json(vm: VM) -> dict[str, Any]:
    return {
        "Id": vm.id,
        "Hint": "",
        "State": vm.state,
        "IpAddress": vm.ip,
        "HostName": vm.id,
        "ErrorCode": vm.error_code,
        "ErrorMessage": vm.error_message,
        "CreationTime": utc_text(vm.created),
    }


class BatchComputeBase(FakeServer):
    """What every part of the fake reads: its tables, settings and lookups."""

    label = "fake BatchCompute"

    def __init__(
        self,
        oss: Any = None,
        access_key_id: str = "fake-bc-key-id",
        access_key_secret: str = "fake-bc-key-secret",  # noqa: S107 - a test credential
        region: str = "cn-test",
    ) -> None:
        super().__init__()
        self.oss = oss
        self.access_key_id, self.access_key_secret, self.region = (
            access_key_id,
            access_key_secret,
            region,
        )
        self.jobs: dict[str, Job] = {}
        self.clusters: dict[str, Cluster] = {}
        self.requests: list[FakeRequest] = []
        self.run_commands = False
        self.max_parallel = 4
        self.node_root_env = "RENDERHUB_NODE_ROOT"
        self.sync_interval = 0.2  # seconds between copies of writable mounts into OSS
        self.keep_work_dirs = False
        self.work_root = Path(tempfile.mkdtemp(prefix="fake-batchcompute-"))
        self._tokens: dict[tuple[str, str], tuple[str, str]] = {}
        self._running: set[tuple[str, str, int]] = set()
        self.documented_readings()

    def documented_readings(self) -> None:
        """Where the documentation allows two readings, the fake takes the first; a test
        switches to the other to show RenderHub does not depend on either.

        * ``failed_instance_keeps_job_running``: with ``JobFailOnInstanceFail: false``, an
          instance failed for good leaves its task and job Running (the docs describe only
          the ``true`` case) instead of ending them once every instance has ended.
        * ``images_need_type``: ``GET /images`` without ``Type`` lists the account's own
          images only; the system images need ``Type=System`` (what the CLI sends).
        * ``list_order``: ``"asked"`` honours ``OrderBy``/``IsReverse``; ``"oldest_first"``
          ignores them; ``"shuffled"`` lists in no order at all.
        * ``min_desired_vm_count``: 1 refuses ``DesiredVMCount: 0`` (the error table says
          1-65536) where 0 (an SDK example) is otherwise accepted.
        """
        self.failed_instance_keeps_job_running = False
        self.images_need_type = False
        self.list_order = "asked"
        self.min_desired_vm_count = 0

    def _get_job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise not_found()
        return self.jobs[job_id]

    def _job_task(self, job_id: str, task: str) -> tuple[Job, Task]:
        job = self._get_job(job_id)
        if task not in job.tasks:
            raise not_found()
        return job, job.tasks[task]

    def _idempotent(self, kind: str, params: dict[str, str], body: Any) -> str | None:
        token = params.get("IdempotentToken")
        if not token:
            return None
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        known = self._tokens.get((kind, token))
        if known is None:
            return None
        if known[0] != digest:
            raise BCError(400, "IdempotentTokenMismatch", "Specified idempotent token mismatch.")
        return known[1]

    def _remember(self, kind: str, params: dict[str, str], body: Any, new_id: str) -> None:
        if token := params.get("IdempotentToken"):
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self._tokens[(kind, token)] = (digest, new_id)

    def _list(
        self, items: list[Any], params: dict[str, str], render: Any, key: str
    ) -> tuple[int, Any]:
        rows = [render(item) for item in items]
        if params.get("State"):
            rows = [r for r in rows if r.get("State") == params["State"]]
        if self.list_order == "shuffled":
            # The same order for every page of one listing (markers must stay meaningful).
            rows.sort(key=lambda r: hashlib.sha256(str(r[key]).encode()).hexdigest())
        elif self.list_order == "asked" and params.get("IsReverse", "").lower() == "true":
            rows.reverse()
        limit = max(1, min(100, int(params.get("MaxItemCount") or 50)))
        marker = params.get("Marker", "")
        if marker:
            keys = [str(r[key]) for r in rows]
            rows = rows[keys.index(marker) :] if marker in keys else []
        page, rest = rows[:limit], rows[limit:]
        return 200, {"Items": page, "NextMarker": str(rest[0][key]) if rest else ""}
