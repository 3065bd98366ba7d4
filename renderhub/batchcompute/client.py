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

Django-free: the caller passes the endpoint, keys and timeouts (RenderHub builds its one
client per process from settings in ``renderhub/cloud.py``).
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import batchcompute as sdk
from batchcompute.core.exceptions import JsonError
from batchcompute.resources import (
    DAG,
    AppJobDescription,
    AutoCluster,
    ClusterDescription,
    GroupDescription,
    JobDescription,
    TaskDescription,
)
from batchcompute.utils.functions import ConfigError
from batchcompute.utils.http import RequestClient

from renderhub.compute import ComputeError

from .endpoint import Endpoint
from .errors import BatchComputeError, Conflict, NotFound
from .plans import NAME_RE, AppJobPlan, ClusterPlan, JobPlan, Machines, TaskPlan
from .statuses import (
    ClusterStatus,
    InstanceStatus,
    InstanceType,
    JobStatus,
    Resources,
    VMStatus,
    instance_status,
)
from .statuses import aware as _aware
from .statuses import text as _text

log = logging.getLogger(__name__)
# The SDK logs every non-2xx at ERROR (an expected 404 or 409 included) and, at DEBUG, the
# request headers; we translate and log failures ourselves.
logging.getLogger("batchcompute.client").setLevel(logging.CRITICAL)
logging.getLogger("batchcompute.utils.http").setLevel(logging.INFO)

T = TypeVar("T")

GROUP = "group"  # the one instance group of every cluster RenderHub creates
PAGE_SIZE = 100  # BatchCompute's largest page
TRANSIENT_CODES = ("InternalError", "ServiceUnavailable", "Throttling", "TooManyRequests")


# --- errors ----------------------------------------------------------------------------


_FAILURES = (sdk.ClientError, ConfigError, JsonError, OSError, http.client.HTTPException)


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


# --- the client --------------------------------------------------------------------------


class _TimedRequestClient(RequestClient):
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

    def create_app_job(self, plan: AppJobPlan, token: str) -> str:
        """Create a job of a BatchCompute app; ``token`` makes a retried create the same job."""
        desc = _app_job_description(plan)
        return str(self._call("create_job", lambda: self._sdk.create_job(desc, token)).Id)

    def find_job(self, name: str, since: datetime, max_pages: int = 20) -> str | None:
        """The id of the job called ``name``, if any (names are unique per row).

        Newest first is asked for, not relied on: a job older than ``since`` ends the search
        only while every page so far came newest first (a service that ignores the order, or
        shuffles, is read to the end, at most ``max_pages`` pages).
        """
        marker, last, ordered, descending = "", None, True, False
        for _ in range(max_pages):
            page = self._call(
                "list_jobs",
                partial(
                    self._sdk.list_jobs, marker, PAGE_SIZE, OrderBy="CreationTime", IsReverse="True"
                ),
            )
            for job in page.Items:
                created = _aware(job.get("CreationTime"))
                if job.get("Name") == name and (created is None or created >= since):
                    return str(job.Id)
            for created in (_aware(job.get("CreationTime")) for job in page.Items):
                if created is None:
                    ordered = False  # cannot tell
                elif last is not None:
                    ordered, descending = ordered and created <= last, descending or created < last
                last = created or last
            if ordered and descending and last is not None and last < since:
                return None  # newest first, as asked: nothing older can be ours
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
        items = [instance_status(item) for item in page.Items]
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
        # Without Type the service may list only the account's own images (the CLI always
        # sends Type=System): ask both ways, each image once.
        images: dict[str, str] = {}
        for fetch in (
            self._sdk.list_images,
            lambda marker, limit: self._sdk.list_images(marker, limit, type_="System"),
        ):
            for image in self._pages("list_images", fetch, ""):
                images.setdefault(_text(image, "Id"), _text(image, "Name"))
        return Resources(types, spot, disks, list(images.items()))

    def _pages(self, what: str, fetch: Callable[[Any, int], Any], first: Any) -> Iterator[Any]:
        marker = first
        while True:
            page = self._call(what, partial(fetch, marker, PAGE_SIZE))
            yield from page.Items
            marker = page.NextMarker
            if not str(marker).strip():
                return

    def ping(self) -> str:
        self._call("list_jobs", lambda: self._sdk.list_jobs("", 1))
        return f"{self.endpoint.url} (region {self.endpoint.region}) answers"


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


def _app_job_description(plan: AppJobPlan) -> AppJobDescription:
    return AppJobDescription(
        {
            "Name": plan.name,
            "Description": plan.description[:200],
            "Type": "App",
            "Priority": int(plan.priority),
            "AutoRelease": False,
            "JobFailOnInstanceFail": plan.fail_on_instance_fail,
            "App": {
                "AppName": plan.app,
                "Inputs": dict(plan.inputs),
                "Outputs": dict(plan.outputs),
                "Logging": {"StdoutPath": plan.log_url, "StderrPath": plan.log_url},
                "Config": dict(plan.config),
            },
        }
    )
