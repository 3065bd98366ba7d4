"""Alibaba Cloud BatchCompute through the real ``batchcompute`` SDK (GPL-2.0: imported here only).

The SDK has neither timeouts nor retries and keeps some configuration process-global, so
:class:`BatchCompute` wraps it: every HTTP request gets a socket timeout (our own
connection factory, which also stops the SDK's global port from mattering), and every call
is retried with exponential backoff and jitter on 5xx, throttling and transport errors,
never on other 4xx. Creates carry an idempotent token, so a retried create is not a
second resource. Results come back as plain dataclasses with aware UTC times, and plans
go in as plain dataclasses: nothing outside this module sees an SDK object.

Pitfalls handled here (see the BatchCompute reference notes): jobs are always built as
``JobDescription`` objects with a Priority (a dict without one becomes an App job),
``task.AutoCluster`` is never read on a ClusterId task (reading it adds the block), SDK
times are naive local datetimes, and names must stay ``[A-Za-z0-9_-]`` because the SDK
puts them in URL paths unescaped.

Also here: the node package (``renderhub/agent`` plus a small entry script, shipped as
the task's PackagePath), :func:`ping` for the status page, the system check for the
BatchCompute settings, and the ``batchcompute`` compute backend.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import logging
import random
import re
import ssl
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import batchcompute as sdk
from batchcompute.core.exceptions import JsonError
from batchcompute.resources import (
    DAG,
    AutoCluster,
    ClusterDescription,
    GroupDescription,
    JobDescription,
    TaskDescription,
)
from batchcompute.utils.functions import ConfigError
from batchcompute.utils.http import RequestClient
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .base import ComputeError

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task

log = logging.getLogger(__name__)
# The SDK logs every non-2xx at ERROR (an expected 404 or 409 included) and, at DEBUG, the
# request headers; we translate and log failures ourselves.
logging.getLogger("batchcompute.client").setLevel(logging.CRITICAL)
logging.getLogger("batchcompute.utils.http").setLevel(logging.INFO)

T = TypeVar("T")

GROUP = "group"  # the one instance group of every cluster RenderHub creates
PAGE_SIZE = 100  # BatchCompute's largest page
TERMINAL_STATES = frozenset({"Finished", "Failed", "Stopped"})
# Names go into URL paths unescaped (SDK pitfall) and must not start with a digit.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
REGION_RE = re.compile(r"^[a-z]{2,}-[a-z0-9-]+$")
OFFICIAL_HOST_RE = re.compile(r"^batchcompute(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")
RELEASE_POLICIES = ("always", "succeeded", "never")
TRANSIENT_CODES = ("InternalError", "ServiceUnavailable", "Throttling", "TooManyRequests")


# --- errors ----------------------------------------------------------------------------


class BatchComputeError(ComputeError):
    """A failed call; ``transient`` ones persisted through our retries."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str = "",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id = status, code, request_id
        self.transient = transient


_FAILURES = (sdk.ClientError, ConfigError, JsonError, OSError, http.client.HTTPException)


class NotFound(BatchComputeError):
    pass


class Conflict(BatchComputeError):
    """409 StateConflict: the resource is not in a state that allows the operation."""


def _translate(exc: Exception, what: str) -> BatchComputeError:
    if isinstance(exc, sdk.ClientError):
        status, code, rid, msg = exc.status, str(exc.code), str(exc.request_id or ""), exc.msg
        text = f"BatchCompute {what} failed: HTTP {status} {code}: {msg} (request {rid or '-'})"
        transient = status >= 500 or status == 429 or code.startswith(TRANSIENT_CODES)
        cls = NotFound if status == 404 else Conflict if status == 409 else BatchComputeError
        return cls(text, status=status, code=code, request_id=rid, transient=transient)
    if isinstance(exc, ConfigError):
        return BatchComputeError(f"BatchCompute {what} failed: {exc._msg}")
    # Timeouts, refused or reset connections, an HTML page from a proxy: try again.
    return BatchComputeError(f"BatchCompute {what} failed: {exc!r}", transient=True)


# --- plans (what to create) and statuses (what exists), all plain data -------------------


@dataclass(frozen=True)
class Mount:
    source: str  # oss://bucket/folder/
    destination: str  # /node/path/
    writable: bool = False


@dataclass(frozen=True)
class Machines:
    """VMs for an AutoCluster task or a cluster's instance group."""

    image_id: str  # img-… (a BatchCompute image) or m-… (an ECS image)
    instance_type: str
    spot: bool = False
    spot_price_limit: float | None = None  # None: pay the going spot price
    disk_type: str = ""
    disk_size_gb: int = 40


@dataclass(frozen=True)
class TaskPlan:
    instance_count: int
    command_line: str
    package_url: str
    log_url: str  # OSS folder for stdout.<job>.<task>.<instance> and stderr.…
    timeout: int
    max_retries: int
    cluster_id: str = ""  # a standing cluster, or …
    auto: Machines | None = None  # … VMs created for this task (AutoCluster)
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    output_mapping: dict[str, str] = field(default_factory=dict)  # node folder -> OSS folder
    log_mapping: dict[str, str] = field(default_factory=dict)  # node file -> OSS folder


@dataclass(frozen=True)
class JobPlan:
    name: str
    description: str
    priority: int  # 0-1000, higher first
    tasks: dict[str, TaskPlan]


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    description: str
    machines: Machines
    nodes: int


@dataclass(frozen=True)
class JobStatus:
    id: str
    name: str
    state: str
    message: str
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    instance_metrics: dict[str, int]


@dataclass(frozen=True)
class InstanceStatus:
    index: int
    state: str
    retry_count: int
    node_ip: str
    exit_code: int | None
    error_code: str
    error_message: str
    detail: str
    stdout_path: str
    stderr_path: str
    started: datetime | None
    ended: datetime | None


@dataclass(frozen=True)
class ClusterStatus:
    id: str
    name: str
    state: str
    desired_nodes: int
    actual_nodes: int
    operation_logs: list[str]
    created: datetime | None


@dataclass(frozen=True)
class VMStatus:
    id: str
    state: str
    ip_address: str
    error_code: int
    error_message: str
    created: datetime | None


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpus: int
    memory_gb: float


@dataclass(frozen=True)
class Resources:
    """What this account may use in the region (for form choices and validation)."""

    instance_types: list[InstanceType]
    spot_instance_types: list[str]
    disk_types: list[str]
    images: list[tuple[str, str]]  # (id, name)


def _aware(value: Any) -> datetime | None:
    # The SDK turns "…Z" times into naive *local* datetimes; astimezone() undoes exactly that.
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _text(obj: Any, key: str) -> str:
    value = obj.get(key) if obj is not None else None
    return "" if value is None else str(value)


# --- the client --------------------------------------------------------------------------


class _TimedRequestClient(RequestClient):  # type: ignore[misc]
    """The SDK's HTTP client with a socket timeout and our own scheme, host and port."""

    def __init__(self, host: str, port: int, https: bool, timeout: float) -> None:
        super().__init__(host, port)
        self.https, self.timeout, self.port = https, timeout, port

    def get_http_connection(self) -> http.client.HTTPConnection:
        if self.https:
            context = ssl.create_default_context()  # the SDK never verifies host names
            return http.client.HTTPSConnection(
                self.h, self.port, timeout=self.timeout, context=context
            )
        return http.client.HTTPConnection(self.h, self.port, timeout=self.timeout)


@dataclass(frozen=True)
class Endpoint:
    region: str
    https: bool
    host: str
    port: int

    @property
    def url(self) -> str:
        default = 443 if self.https else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{'https' if self.https else 'http'}://{self.host}{port}"


def parse_endpoint(region: str, endpoint: str) -> Endpoint:
    """``BATCHCOMPUTE_ENDPOINT`` (a host or URL) overrides the region's official host."""
    text = endpoint.strip() or f"batchcompute.{region}.aliyuncs.com"
    parts = urlsplit(text if "://" in text else "https://" + text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is not http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} must be only scheme, host, port")
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        raise ComputeError(f"BATCHCOMPUTE_ENDPOINT {endpoint!r} has an invalid port") from None
    return Endpoint(region, https, parts.hostname, port)


class BatchCompute:
    """Typed, retried, time-limited calls to one BatchCompute endpoint.

    ``calls`` counts HTTP requests (retries included) per operation, for tests and benchmarks.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        access_key_id: str,
        access_key_secret: str,
        *,
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        if not access_key_id or not access_key_secret:
            raise ComputeError("BatchCompute needs an AccessKey id and secret")
        self.endpoint = endpoint
        self.retries, self.backoff, self.max_backoff = max(0, retries), backoff, max_backoff
        self.calls: Counter[str] = Counter()
        # The SDK finds x-acs-region-id by looking the host up in a global table.
        sdk.Client.register_region(endpoint.region, endpoint.host, endpoint.port)
        self._sdk = sdk.Client(
            endpoint.host, access_key_id, access_key_secret, security_conn=endpoint.https
        )
        # The SDK's Api object owns one RequestClient: swap in ours (pinned SDK 2.1.7).
        self._sdk._sa._c.rc = _TimedRequestClient(
            endpoint.host, endpoint.port, endpoint.https, timeout
        )

    def __repr__(self) -> str:  # never the secret
        return f"BatchCompute(region={self.endpoint.region!r}, endpoint={self.endpoint.url!r})"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            self.calls[what] += 1
            try:
                return fn()
            except _FAILURES as exc:
                error = _translate(exc, what)
            if not error.transient or attempt >= self.retries:
                if error.transient:
                    error.args = (f"{error.args[0]} (after {attempt + 1} attempts)",)
                raise error
            delay = min(self.max_backoff, self.backoff * 2**attempt)
            delay = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
            log.warning("%s; retry %d/%d in %.2fs", error, attempt + 1, self.retries, delay)
            time.sleep(delay)
            attempt += 1

    # --- jobs ------------------------------------------------------------------------

    def create_job(self, plan: JobPlan) -> str:
        """Create the job; the name doubles as idempotent token, so a retry is no second job."""
        desc = _job_description(plan)
        return str(self._call("create_job", lambda: self._sdk.create_job(desc, plan.name)).Id)

    def find_job(self, name: str, since: datetime, max_pages: int = 20) -> str | None:
        """The id of the newest job called ``name`` created after ``since``, if any."""
        marker = ""
        for _ in range(max_pages):
            page = self._call(
                "list_jobs",
                lambda marker=marker: self._sdk.list_jobs(
                    marker, PAGE_SIZE, OrderBy="CreationTime", IsReverse="True"
                ),
            )
            for job in page.Items:
                if job.get("Name") == name:
                    return str(job.Id)
                created = _aware(job.get("CreationTime"))
                if created is not None and created < since:
                    return None  # newest first: nothing older can be ours
            marker = page.NextMarker
            if not marker:
                return None
        return None

    def get_job(self, job_id: str) -> JobStatus:
        job = self._call("get_job", lambda: self._sdk.get_job(job_id))
        metrics = job.get("InstanceMetrics")
        return JobStatus(
            id=job_id,
            name=_text(job, "Name"),
            state=_text(job, "State"),
            message=_text(job, "Message"),
            created=_aware(job.get("CreationTime")),
            started=_aware(job.get("StartTime")),
            ended=_aware(job.get("EndTime")),
            instance_metrics={k: int(v or 0) for k, v in (metrics or {}).items()},
        )

    def list_instances(
        self, job_id: str, task: str, marker: int = 0, limit: int = PAGE_SIZE
    ) -> tuple[list[InstanceStatus], int | None]:
        """One page of the task's instances from index ``marker``; the next marker or None."""
        page = self._call(
            "list_instances", lambda: self._sdk.list_instances(job_id, task, marker, limit)
        )
        items = [_instance(item) for item in page.Items]
        next_marker = page.NextMarker
        return items, (int(next_marker) if str(next_marker).strip() else None)

    def stop_job(self, job_id: str) -> bool:
        """Stop a waiting or running job; False when it had ended already."""
        try:
            self._call("stop_job", lambda: self._sdk.stop_job(job_id))
        except Conflict:
            return False
        return True

    def delete_job(self, job_id: str) -> bool:
        """Release an ended job; False when it was gone already."""
        try:
            self._call("delete_job", lambda: self._sdk.delete_job(job_id))
        except NotFound:
            return False
        return True

    # --- clusters --------------------------------------------------------------------

    def create_cluster(self, plan: ClusterPlan) -> str:
        desc = _cluster_description(plan)
        return str(
            self._call("create_cluster", lambda: self._sdk.create_cluster(desc, plan.name)).Id
        )

    def find_cluster(self, name: str) -> str | None:
        for cluster in self._pages("list_clusters", self._sdk.list_clusters, ""):
            if cluster.get("Name") == name and cluster.get("State") != "Deleting":
                return str(cluster.Id)
        return None

    def get_cluster(self, cluster_id: str) -> ClusterStatus:
        cluster = self._call("get_cluster", lambda: self._sdk.get_cluster(cluster_id))
        group = (cluster.get("Groups") or {}).get(GROUP)
        return ClusterStatus(
            id=cluster_id,
            name=_text(cluster, "Name"),
            state=_text(cluster, "State"),
            desired_nodes=int(group.get("DesiredVMCount") or 0) if group else 0,
            actual_nodes=int(group.get("ActualVMCount") or 0) if group else 0,
            operation_logs=[str(line) for line in cluster.get("OperationLogs") or []],
            created=_aware(cluster.get("CreationTime")),
        )

    def cluster_vms(self, cluster_id: str) -> list[VMStatus]:
        def fetch(marker: str, limit: int) -> Any:
            return self._sdk.list_cluster_instances(cluster_id, GROUP, marker, limit)

        return [
            VMStatus(
                id=_text(vm, "Id"),
                state=_text(vm, "State"),
                ip_address=_text(vm, "IpAddress"),
                error_code=int(vm.get("ErrorCode") or 0),
                error_message=_text(vm, "ErrorMessage"),
                created=_aware(vm.get("CreationTime")),
            )
            for vm in self._pages("list_cluster_instances", fetch, "")
        ]

    def resize_cluster(self, cluster_id: str, nodes: int) -> None:
        self._call(
            "resize_cluster",
            lambda: self._sdk.change_cluster_desired_vm_count(cluster_id, **{GROUP: int(nodes)}),
        )

    def delete_cluster(self, cluster_id: str) -> bool:
        """Delete the cluster (asynchronous: it shows Deleting, then disappears)."""
        try:
            self._call("delete_cluster", lambda: self._sdk.delete_cluster(cluster_id))
        except NotFound:
            return False
        return True

    # --- what may be used ------------------------------------------------------------

    def resources(self) -> Resources:
        available = self._call("get_available_resource", self._sdk.get_available_resource)
        types = [
            InstanceType(
                name=str(item.get("InstanceType")),
                cpus=int(item.get("CpuCore") or 0),
                memory_gb=float(item.get("MemorySize") or 0),
            )
            for item in available.get("AvailableClusterInstanceType") or []
        ]
        spot = [
            str(i.get("InstanceType")) for i in available.get("AvailableSpotInstanceType") or ()
        ]
        disks = [str(d) for d in available.get("AvailableSystemDiskType") or []]
        images = [
            (_text(image, "Id"), _text(image, "Name"))
            for image in self._pages("list_images", self._sdk.list_images, "")
        ]
        return Resources(types, spot, disks, images)

    def _pages(self, what: str, fetch: Callable[[Any, int], Any], first: Any) -> Iterator[Any]:
        marker = first
        while True:
            page = self._call(what, lambda marker=marker: fetch(marker, PAGE_SIZE))
            yield from page.Items
            marker = page.NextMarker
            if not str(marker).strip():
                return

    def ping(self) -> str:
        self._call("list_jobs", lambda: self._sdk.list_jobs("", 1))
        return f"{self.endpoint.url} (region {self.endpoint.region}) answers"


def _instance(item: Any) -> InstanceStatus:
    result, error = item.get("Result"), item.get("Error")
    exit_code = result.get("ExitCode") if result is not None else None
    return InstanceStatus(
        index=int(item.get("InstanceId") or 0),
        state=_text(item, "State"),
        retry_count=int(item.get("RetryCount") or 0),
        node_ip=_text(item, "NodeIp"),
        exit_code=None if exit_code in (None, "") else int(exit_code),
        error_code=_text(result, "ErrorCode") or _text(error, "Code"),
        error_message=_text(result, "ErrorMessage") or _text(error, "Message"),
        detail=_text(result, "Detail"),
        stdout_path=_text(item, "StdoutRedirectPath"),
        stderr_path=_text(item, "StderrRedirectPath"),
        started=_aware(item.get("StartTime")),
        ended=_aware(item.get("EndTime")),
    )


def _configs(machines: Machines) -> dict[str, Any]:
    disk: dict[str, Any] = {"Size": int(machines.disk_size_gb)}
    if machines.disk_type:
        disk["Type"] = machines.disk_type
    return {"Disks": {"SystemDisk": disk}, "Networks": {"VPC": {"CidrBlock": "192.168.0.0/16"}}}


def _spot(machines: Machines) -> dict[str, Any]:
    if not machines.spot:
        return {"ResourceType": "OnDemand"}
    if machines.spot_price_limit is None:
        return {"ResourceType": "Spot", "SpotStrategy": "SpotAsPriceGo"}
    return {
        "ResourceType": "Spot",
        "SpotStrategy": "SpotWithPriceLimit",
        "SpotPriceLimit": float(machines.spot_price_limit),
    }


def _image(machines: Machines) -> dict[str, str]:
    key = "ECSImageId" if machines.image_id.startswith("m-") else "ImageId"
    return {key: machines.image_id}


def _task_description(plan: TaskPlan) -> TaskDescription:
    task = TaskDescription()
    task.InstanceCount = plan.instance_count
    task.MaxRetryCount = plan.max_retries
    task.Timeout = plan.timeout
    command = task.Parameters.Command
    command.CommandLine = plan.command_line
    command.PackagePath = plan.package_url
    command.EnvVars = dict(plan.env)
    task.Parameters.StdoutRedirectPath = plan.log_url
    task.Parameters.StderrRedirectPath = plan.log_url
    task.OutputMapping = dict(plan.output_mapping)
    task.LogMapping = dict(plan.log_mapping)
    if plan.mounts:
        task.Mounts = {
            "Entries": [
                {"Source": m.source, "Destination": m.destination, "WriteSupport": m.writable}
                for m in plan.mounts
            ],
            "Locale": "utf-8",
            "Lock": False,
        }
        task.WriteSupport = any(m.writable for m in plan.mounts)
    if plan.cluster_id:
        task.ClusterId = plan.cluster_id  # and never *read* task.AutoCluster: that adds one
    elif plan.auto is not None:
        m = plan.auto
        task.AutoCluster = AutoCluster(
            {
                **_image(m),
                "InstanceType": m.instance_type,
                **_spot(m),
                "Configs": _configs(m),
                "ReserveOnFail": False,
            }
        )
    else:
        raise ComputeError("a task needs a cluster id or AutoCluster machines")
    return task


def _job_description(plan: JobPlan) -> JobDescription:
    if not NAME_RE.match(plan.name):
        raise ComputeError(f"{plan.name!r} is not a valid BatchCompute job name")
    desc = JobDescription()  # never a dict: one without Priority would become an App job
    desc.Name = plan.name
    desc.Description = plan.description[:200]
    desc.Priority = int(plan.priority)
    desc.Type = "DAG"
    desc.JobFailOnInstanceFail = False  # chunks are independent: one bad chunk stops no other
    desc.AutoRelease = False  # we read the final state, then release per BATCHCOMPUTE_RELEASE
    dag = DAG()
    for name, task in plan.tasks.items():
        if not NAME_RE.match(name):
            raise ComputeError(f"{name!r} is not a valid BatchCompute task name")
        dag.add_task(task_name=name, task=_task_description(task))
    desc.DAG = dag
    return desc


def _cluster_description(plan: ClusterPlan) -> ClusterDescription:
    if not NAME_RE.match(plan.name):
        raise ComputeError(f"{plan.name!r} is not a valid BatchCompute cluster name")
    m = plan.machines
    desc = ClusterDescription()
    desc.Name = plan.name
    desc.Description = plan.description[:200]
    desc.ImageId = m.image_id
    desc.InstanceType = m.instance_type
    group = GroupDescription()
    group.DesiredVMCount = int(plan.nodes)
    group.InstanceType = m.instance_type
    for key, value in _spot(m).items():
        group[key] = value
    desc.add_group(GROUP, group)
    desc.Configs = _configs(m)
    return desc


# --- one client per process, from settings ----------------------------------------------

_client_lock = threading.Lock()
_clients: dict[tuple[Any, ...], BatchCompute] = {}


def get_client() -> BatchCompute:
    """The client for the current settings (cached; settings are part of the key)."""
    if not settings.BATCHCOMPUTE_REGION:
        raise ComputeError("BatchCompute is not configured (BATCHCOMPUTE_REGION is empty).")
    key = (
        settings.BATCHCOMPUTE_REGION,
        settings.BATCHCOMPUTE_ENDPOINT,
        settings.BATCHCOMPUTE_ACCESS_KEY_ID,
        settings.BATCHCOMPUTE_ACCESS_KEY_SECRET,
        settings.BATCHCOMPUTE_TIMEOUT,
        settings.BATCHCOMPUTE_RETRIES,
    )
    with _client_lock:
        if (client := _clients.get(key)) is None:
            client = _clients[key] = BatchCompute(
                parse_endpoint(settings.BATCHCOMPUTE_REGION, settings.BATCHCOMPUTE_ENDPOINT),
                settings.BATCHCOMPUTE_ACCESS_KEY_ID,
                settings.BATCHCOMPUTE_ACCESS_KEY_SECRET,
                timeout=settings.BATCHCOMPUTE_TIMEOUT,
                retries=settings.BATCHCOMPUTE_RETRIES,
            )
    return client


def reset_clients() -> None:
    with _client_lock:
        _clients.clear()


def ping() -> str:
    """For the status page: one cheap signed call (list one job)."""
    return get_client().ping()


def tagged(name: str) -> str:
    """``name`` prefixed with this deployment's tag (every cloud resource we create)."""
    return f"{settings.RENDERHUB_DEPLOYMENT_TAG}-{name}"


# --- the node package ---------------------------------------------------------------------

NODE_ENTRY = '''\
"""RenderHub on a BatchCompute node: render this instance's chunk with the node agent.

Written by RenderHub (renderhub/compute/batchcompute.py); standard library only. The
specs file (RENDERHUB_SPECS) holds the spec every chunk shares and one entry per instance;
BATCH_COMPUTE_DAG_INSTANCE_ID says which one is ours. The agent's JSON events go to
stdout and to a file in the mounted log folder, and its logs are copied there every few
seconds, so the manager can follow the render while it runs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Node paths are below this root: empty on a real VM; a local emulator sets a folder.
ROOT = os.environ.get("RENDERHUB_NODE_ROOT", "")
LOGS = ("agent.log", "stdout.log", "stderr.log")
COPY_EVERY = 5.0


def node(path):
    return ROOT + path if ROOT and path.startswith("/") else path


def copy_logs(work_dir, log_dir):
    os.makedirs(log_dir, exist_ok=True)
    for name in LOGS:
        if os.path.exists(os.path.join(work_dir, name)):
            shutil.copyfile(os.path.join(work_dir, name), os.path.join(log_dir, name))


def main():
    index = int(os.environ["BATCH_COMPUTE_DAG_INSTANCE_ID"])
    with open(node(os.environ["RENDERHUB_SPECS"]), encoding="utf-8") as fh:
        specs = json.load(fh)
    entry = specs["instances"][index]
    spec = dict(specs["common"], task=entry["task"], frames=entry["frames"])
    for key in ("scene", "work_dir", "output_dir", "publish_dir"):
        spec[key] = node(spec[key])
    spec["cpus"] = spec.get("cpus") or os.cpu_count() or 1
    for key in ("work_dir", "output_dir", "publish_dir"):  # left by an earlier instance
        shutil.rmtree(spec[key], ignore_errors=True)
    os.makedirs(spec["work_dir"])
    spec_path = os.path.join(spec["work_dir"], "spec.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    os.makedirs(node(specs["events_dir"]), exist_ok=True)
    events = os.path.join(node(specs["events_dir"]), "%d.%d.jsonl" % (index, time.time_ns()))
    log_dir = node(specs["logs_dir"]) + "task-%d/" % entry["task"]
    env = dict(os.environ, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
    agent = subprocess.Popen(
        [sys.executable, "-m", "renderhub.agent", spec_path], stdout=subprocess.PIPE, env=env
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.send_signal(signal.SIGTERM))
    done = threading.Event()

    def keep_copying():
        while not done.wait(COPY_EVERY):
            copy_logs(spec["work_dir"], log_dir)

    threading.Thread(target=keep_copying, daemon=True).start()
    for line in agent.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        if line.startswith((b'{"event": "progress"', b'{"event": "log"')):
            continue  # the manager reads neither; fewer writes, fewer reads
        with open(events, "ab") as fh:  # closed per event: a mounted object is saved on close
            fh.write(line)
    code = agent.wait()
    done.set()
    copy_logs(spec["work_dir"], log_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
'''
NODE_ENTRY_NAME = "renderhub_node.py"
_package: tuple[bytes, str] | None = None


def node_package() -> tuple[bytes, str]:
    """The node package (tar.gz bytes) and its content-addressed file name.

    Byte-for-byte reproducible (sorted members, fixed times and owners), so an unchanged
    agent maps to the same name and an uploaded package is reused.
    """
    global _package
    if _package is None:
        agent_dir = Path(__file__).resolve().parent.parent / "agent"
        files = {
            "renderhub/__init__.py": b"",
            NODE_ENTRY_NAME: NODE_ENTRY.encode(),
            **{f"renderhub/agent/{p.name}": p.read_bytes() for p in sorted(agent_dir.glob("*.py"))},
        }
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
                tar.addfile(info, io.BytesIO(files[name]))
        data = gzip.compress(raw.getvalue(), mtime=0)
        _package = (data, f"renderhub-node-{hashlib.sha256(data).hexdigest()[:16]}.tar.gz")
    return _package


def node_command() -> str:
    return f"{settings.BATCHCOMPUTE_NODE_PYTHON} {NODE_ENTRY_NAME}"


# --- configuration check -------------------------------------------------------------------


def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """BATCHCOMPUTE_REGION and _ENDPOINT agree, and the names we create will be valid."""
    region, endpoint = settings.BATCHCOMPUTE_REGION, settings.BATCHCOMPUTE_ENDPOINT
    if not region and not endpoint:
        return []
    problems: list[CheckMessage] = []
    if not region:
        problems.append(
            Error(
                "BATCHCOMPUTE_ENDPOINT is set but BATCHCOMPUTE_REGION is not.",
                hint="Requests carry the region id; set BATCHCOMPUTE_REGION, e.g. cn-hangzhou.",
                id="batchcompute.E001",
            )
        )
        return problems
    if not REGION_RE.match(region):
        problems.append(
            Error(f"BATCHCOMPUTE_REGION {region!r} is not a region id.", id="batchcompute.E002")
        )
    try:
        parsed = parse_endpoint(region, endpoint)
    except ComputeError as exc:
        problems.append(Error(str(exc), id="batchcompute.E003"))
    else:
        if parsed.https and parsed.port != 443:
            problems.append(
                Error(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r}: the SDK speaks HTTPS on port 443 only.",
                    id="batchcompute.E004",
                )
            )
        official = OFFICIAL_HOST_RE.match(parsed.host)
        if endpoint and official and official.group(1) != region:
            problems.append(
                Error(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is in region {official.group(1)}, "
                    f"but BATCHCOMPUTE_REGION is {region}.",
                    id="batchcompute.E005",
                )
            )
        local = parsed.host in ("localhost", "127.0.0.1", "::1")
        if not parsed.https and not local:
            problems.append(
                Warning(
                    f"BATCHCOMPUTE_ENDPOINT {endpoint!r} is plain HTTP.",
                    hint="Use https:// outside tests.",
                    id="batchcompute.W001",
                )
            )
    if not TAG_RE.match(settings.RENDERHUB_DEPLOYMENT_TAG):
        problems.append(
            Error(
                f"RENDERHUB_DEPLOYMENT_TAG {settings.RENDERHUB_DEPLOYMENT_TAG!r} cannot start "
                "BatchCompute names: use a letter, then letters, digits, '-' or '_' (<= 32).",
                id="batchcompute.E006",
            )
        )
    if settings.BATCHCOMPUTE_RELEASE not in RELEASE_POLICIES:
        problems.append(
            Error(
                f"BATCHCOMPUTE_RELEASE must be one of {', '.join(RELEASE_POLICIES)}.",
                id="batchcompute.E007",
            )
        )
    return problems


# --- the compute backend -----------------------------------------------------------------


class BatchComputeBackend:
    """One BatchCompute job per dispatch; the work lives in :mod:`jobs.cloud`."""

    name = "batchcompute"

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        from jobs import cloud

        cloud.submit(job, tasks)

    def cancel(self, job: RenderJob, tasks: list[Task]) -> None:
        from jobs import cloud

        cloud.cancel(job)

    def poll(self, job: RenderJob) -> None:
        from jobs import cloud

        cloud.poll_job(job)
