"""An in-memory Alibaba Cloud BatchCompute server that the real ``batchcompute`` SDK talks to.

It speaks the REST protocol the SDK 2.1.7 speaks (API 2015-11-11): the same paths and
methods, the ``acs`` HMAC-SHA1 signature verified over the raw request target with blank
query values kept, the JSON shapes the SDK parses (``Items`` + ``NextMarker`` lists, times
as ``%Y-%m-%dT%H:%M:%S.%fZ``), the status codes (201 create/stop/start, 200 get/modify,
204 delete, 404, 409 StateConflict) and error bodies ``{Code, Message, RequestId}`` with the
request id also in ``x-acs-request-id``. Creates honour ``IdempotentToken``.

Jobs, tasks, instances and clusters follow BatchCompute's state machines, driven by the
test::

    fake = FakeBatchCompute(oss=fake_oss).start()       # an OSS fake for packages and logs
    fake.start_instances(job_id)                        # Waiting -> Running
    fake.finish_instance(job_id, 0, exit_code=1)        # retried up to MaxRetryCount, then Failed
    fake.fail_job(job_id, "Quota exhausted")            # Failed, with Job.Message
    fake.tick()                                         # clusters converge, Deleting ones vanish
    fake.fail_next(2, status=503); fake.delay_next(1, 3.0)

With ``run_commands = True`` instances really run: the package (PackagePath) is fetched
from the OSS fake and unpacked into a work dir, Mounts and InputMapping are materialised
from the OSS fake under a per-instance node root (writable mounts are copied back while the
command runs), the CommandLine runs with the BATCH_COMPUTE_DAG_* environment (and
``node_root_env`` naming the node root), and afterwards OutputMapping, LogMapping, stdout
and stderr land in the OSS fake as BatchCompute names them. Failed instances are retried
up to MaxRetryCount. Only the standard library; binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import string
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeBatchCompute", "FakeRequest"]

TERMINAL = ("Finished", "Failed", "Stopped")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
MAX_SKEW = 15 * 60  # seconds; the docs say requests older than 15 minutes are refused


def utc_text(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else ""


def now() -> datetime:
    return datetime.now(UTC)


def _alnum(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


class BCError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def not_found() -> BCError:
    return BCError(404, "InvalidResource.NotFound", "Specified resource is not found.")


def conflict(state: str) -> BCError:
    return BCError(
        409, "StateConflict", f"User operation is invalid. The current resource state is {state}."
    )


# --- state ------------------------------------------------------------------------------


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


@dataclass
class _Fault:
    remaining: int
    method: str | None
    route: str | None
    after: int
    status: int = 0
    code: str = ""
    message: str = ""
    delay: float = 0.0


# --- the server ---------------------------------------------------------------------------


class FakeBatchCompute:
    def __init__(
        self,
        oss: Any = None,
        access_key_id: str = "fake-bc-key-id",
        access_key_secret: str = "fake-bc-key-secret",  # noqa: S107 - a test credential
        region: str = "cn-test",
    ) -> None:
        self.oss = oss
        self.access_key_id, self.access_key_secret, self.region = (
            access_key_id,
            access_key_secret,
            region,
        )
        self.jobs: dict[str, Job] = {}
        self.clusters: dict[str, Cluster] = {}
        self.requests: list[FakeRequest] = []
        self.internal_errors: list[BaseException] = []
        self.run_commands = False
        self.max_parallel = 4
        self.node_root_env = "RENDERHUB_NODE_ROOT"
        self.sync_interval = 0.2  # seconds between copies of writable mounts into OSS
        self.keep_work_dirs = False
        self.work_root = Path(tempfile.mkdtemp(prefix="fake-batchcompute-"))
        self._tokens: dict[tuple[str, str], tuple[str, str]] = {}
        self._faults: deque[_Fault] = deque()
        self._running: set[tuple[str, str, int]] = set()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeBatchCompute:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        for target in (self._serve, self._schedule):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for job in self.jobs.values():
                for _task, inst in job.instances():
                    self._kill(inst)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        shutil.rmtree(self.work_root, ignore_errors=True)

    def __enter__(self) -> FakeBatchCompute:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake BatchCompute server is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget everything (running commands are killed)."""
        with self._lock:
            for job in self.jobs.values():
                for _task, inst in job.instances():
                    self._kill(inst)
            self.jobs.clear()
            self.clusters.clear()
            self.requests.clear()
            self._tokens.clear()
            self._faults.clear()
            self.internal_errors.clear()
            self.run_commands = False

    # --- faults and introspection --------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        code: str | None = None,
        message: str = "injected fault",
        *,
        method: str | None = None,
        route: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``n`` matching requests with an error (the request is not carried
        out). ``route`` is like ``"GET /jobs/{id}"``; the first ``after`` pass through."""
        codes = {429: "Throttling", 500: "InternalError", 503: "ServiceUnavailable"}
        code = code or codes.get(status, "InjectedFault")
        with self._lock:
            self._faults.append(_Fault(n, method, route, after, status, code, message))

    def delay_next(
        self, n: int, seconds: float, *, method: str | None = None, route: str | None = None
    ) -> None:
        """Hold the next ``n`` matching requests for ``seconds``, then carry them out."""
        with self._lock:
            self._faults.append(_Fault(n, method, route, 0, delay=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, route: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (route is None or r.route == route) and (method is None or r.method == method)
            )

    def bodies(self, route: str) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if r.route == route]

    def job_by_name(self, name: str) -> Job:
        with self._lock:
            [job] = [j for j in self.jobs.values() if j.name == name]
            return job

    # --- test drivers: jobs ----------------------------------------------------------------

    def start_instances(
        self, job_id: str, task: str = "render", indices: list[int] | None = None
    ) -> None:
        """Waiting instances start Running (all, or ``indices``)."""
        with self._lock:
            job, t = self._job_task(job_id, task)
            for inst in t.instances:
                if inst.state == "Waiting" and (indices is None or inst.index in indices):
                    self._begin(job, t, inst)

    def finish_instance(
        self,
        job_id: str,
        index: int,
        *,
        task: str = "render",
        exit_code: int = 0,
        error_code: str = "",
        error_message: str = "",
    ) -> str:
        """End the instance's current attempt; returns its new state. A failure is retried
        (back to Waiting) while RetryCount < MaxRetryCount."""
        with self._lock:
            job, t = self._job_task(job_id, task)
            inst = t.instances[index]
            if inst.state == "Waiting":
                self._begin(job, t, inst)
            self._end_attempt(job, t, inst, exit_code, error_code, error_message)
            return inst.state

    def fail_job(self, job_id: str, message: str) -> None:
        """The job fails as a whole (say its AutoCluster could not be created)."""
        with self._lock:
            job = self._get_job(job_id)
            for _t, inst in job.instances():
                if inst.state not in TERMINAL:
                    self._kill(inst)
                    inst.state, inst.ended = "Stopped", now()
            self._finish_job(job, "Failed", message)

    def fail_attempts(self, job_id: str, index: int, times: int = 1, task: str = "render") -> None:
        """With run_commands: the instance's next ``times`` attempts fail (a lost VM)."""
        with self._lock:
            self._job_task(job_id, task)[1].instances[index].fail_attempts = times

    def instance(self, job_id: str, index: int, task: str = "render") -> Instance:
        with self._lock:
            return self._job_task(job_id, task)[1].instances[index]

    # --- test drivers: clusters --------------------------------------------------------

    def tick(self) -> None:
        """One step of cluster convergence: VMs Pending -> Starting -> Running, surplus VMs
        deleted, Deleting clusters gone."""
        with self._lock:
            for cluster in list(self.clusters.values()):
                if cluster.state == "Deleting":
                    del self.clusters[cluster.id]
                    continue
                for group, vms in cluster.vms.items():
                    desired = cluster.desired[group]
                    for vm in vms:
                        if vm.state == "Starting":
                            vm.state, vm.ip = "Running", f"10.0.0.{random.randint(2, 250)}"
                        elif vm.state == "Pending":
                            vm.state = "Starting"
                    alive = [vm for vm in vms if vm.state != "Deleting"]
                    vms[:] = [vm for vm in vms if vm.state != "Deleting"]
                    for vm in alive[desired:]:
                        vm.state = "Deleting"
                    while len([vm for vm in vms if vm.state != "Deleting"]) < desired:
                        vms.append(VM(f"i-{_alnum(20)}", now()))

    def running_vms(self, cluster_id: str) -> int:
        with self._lock:
            cluster = self.clusters[cluster_id]
            return sum(vm.state == "Running" for vms in cluster.vms.values() for vm in vms)

    # --- request handling --------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items() if v}
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        route = _route(method, segments)
        if route == "GET /jobs/{id}" and "description" in params:
            route += "?description"
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body
        with self._lock:
            self.requests.append(FakeRequest(method, target, route, params, headers, body))
        fault = self._take_fault(method, route)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status:
            raise BCError(fault.status, fault.code, fault.message)
        self._authenticate(method, target, headers)
        if isinstance(body, bytes):
            raise BCError(400, "InvalidJsonFormat", "The request body has an invalid json format.")
        with self._lock:
            return self._dispatch(method, route, segments, params, body)

    def _take_fault(self, method: str, route: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method) or fault.route not in (None, route):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _authenticate(self, method: str, target: str, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        if not auth.startswith("acs ") or ":" not in auth:
            raise BCError(403, "Forbidden", "Missing or malformed Authorization header.")
        key_id, signature = auth[4:].rsplit(":", 1)
        if key_id != self.access_key_id or headers.get("x-acs-access-key-id") != key_id:
            raise BCError(403, "InvalidAccessKeyId.NotFound", "The AccessKey id does not exist.")
        date = headers.get("date", "")
        try:
            skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            raise BCError(400, "MissingDate", "Date is mandatory for this action.") from None
        if skew > MAX_SKEW:
            raise BCError(403, "RequestTimeTooSkewed", "The request time is too skewed.")
        if headers.get("x-acs-region-id") != self.region:
            raise BCError(400, "InvalidRegion", f"This endpoint serves {self.region}.")
        canonical = "".join(
            f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-acs-")
        )
        # The SDK leaves the MD5 slot empty (it sends "contentMd5", not Content-MD5).
        plain = "\n".join(
            [
                method,
                headers.get("accept", "").strip(),
                "",
                headers.get("content-type", "").strip(),
                date,
                canonical + target,
            ]
        )
        digest = hmac.new(self.access_key_secret.encode(), plain.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
            raise BCError(400, "SignatureDoesNotMatch", "The request signature does not match.")

    def _dispatch(
        self, method: str, route: str, segments: list[str], params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        handlers = {
            "POST /jobs": lambda: self._create_job(params, body),
            "GET /jobs": lambda: self._list(
                sorted(self.jobs.values(), key=lambda j: j.created), params, _job_json, "Id"
            ),
            "GET /jobs/{id}": lambda: (200, _job_json(self._get_job(segments[1]))),
            "GET /jobs/{id}?description": lambda: (200, self._get_job(segments[1]).desc),
            "POST /jobs/{id}/stop": lambda: self._stop_job(segments[1]),
            "POST /jobs/{id}/start": lambda: self._start_job(segments[1]),
            "PUT /jobs/{id}": lambda: self._change_priority(segments[1], body),
            "DELETE /jobs/{id}": lambda: self._delete_job(segments[1]),
            "GET /jobs/{id}/tasks": lambda: self._list(
                list(self._get_job(segments[1]).tasks.values()), params, _task_json, "TaskName"
            ),
            "GET /jobs/{id}/tasks/{task}": lambda: (
                200,
                _task_json(self._job_task(segments[1], segments[3])[1]),
            ),
            "GET /jobs/{id}/tasks/{task}/instances": lambda: self._list_instances(segments, params),
            "GET /jobs/{id}/tasks/{task}/instances/{n}": lambda: self._get_instance(segments),
            "POST /clusters": lambda: self._create_cluster(params, body),
            "GET /clusters": lambda: self._list(
                sorted(self.clusters.values(), key=lambda c: c.created),
                params,
                _cluster_json,
                "Id",
            ),
            "GET /clusters/{id}": lambda: (200, _cluster_json(self._get_cluster(segments[1]))),
            "PUT /clusters/{id}": lambda: self._modify_cluster(segments[1], body),
            "DELETE /clusters/{id}": lambda: self._delete_cluster(segments[1]),
            "GET /clusters/{id}/groups/{group}/instances": lambda: self._list_vms(segments, params),
            "GET /quotas": lambda: (200, QUOTAS),
            "GET /available": lambda: (200, AVAILABLE),
            "GET /images": lambda: self._list(IMAGES, params, lambda i: i, "Id"),
        }
        handler = handlers.get(route)
        if handler is None:
            if route.startswith(("GET ", "POST ", "PUT ", "DELETE ")) and segments:
                raise BCError(400, "InvalidUrlPattern", "Specified url pattern is not valid.")
            raise BCError(400, "MethodNotAllowed", "The request http method is not supported.")
        return handler()

    # --- jobs --------------------------------------------------------------------------

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

    def _create_job(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        if (existing := self._idempotent("job", params, body)) is not None:
            return 201, {"Id": existing}
        _require(body, "Name", "Priority", "DAG")
        if body.get("Type", "DAG") != "DAG":
            raise BCError(400, "InvalidType", "This fake runs DAG jobs only.")
        if not NAME_RE.match(str(body["Name"])):
            raise BCError(
                400, "InvalidName", "Name must be [A-Za-z0-9_-], not starting with a digit."
            )
        priority = body["Priority"]
        if not isinstance(priority, int) or not 0 <= priority <= 1000:
            raise BCError(400, "InvalidPriority", "Specified parameter Priority is not valid.")
        dag = body["DAG"]
        if not isinstance(dag, dict) or not dag.get("Tasks"):
            raise BCError(400, "MissingDAG.Tasks", "DAG.Tasks is mandatory for this action.")
        tasks: dict[str, Task] = {}
        for name, desc in dag["Tasks"].items():
            if not NAME_RE.match(name):
                raise BCError(400, "InvalidTaskName", f"Task name {name!r} is not valid.")
            count = desc.get("InstanceCount", 1)
            if not isinstance(count, int) or count < 1:
                raise BCError(400, "InvalidInstanceCount", "InstanceCount must be >= 1.")
            cluster_id = desc.get("ClusterId") or ""
            auto = desc.get("AutoCluster")
            if cluster_id:
                if cluster_id not in self.clusters:
                    raise BCError(400, "InvalidClusterId", f"Cluster {cluster_id} does not exist.")
            elif not auto or not auto.get("InstanceType"):
                raise BCError(400, "MissingClusterId", "ClusterId or AutoCluster is mandatory.")
            elif not (auto.get("ImageId") or auto.get("ECSImageId")):
                raise BCError(400, "MissingImageId", "AutoCluster.ImageId is mandatory.")
            tasks[name] = Task(name, desc, [Instance(i) for i in range(count)])
        deps = dag.get("Dependencies") or {}
        if any(
            name in deps.get(child, ()) for name, children in deps.items() for child in children
        ):
            raise BCError(400, "BadDAG", "It is a cyclic dag.")
        job = Job(f"job-{uuid.uuid4().hex.upper()}", body, tasks, now())
        self.jobs[job.id] = job
        self._remember("job", params, body, job.id)
        return 201, {"Id": job.id}

    def _stop_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in ("Waiting", "Running"):
            raise conflict(job.state)
        for task, inst in job.instances():
            if inst.state not in TERMINAL:
                self._kill(inst)
                inst.state, inst.ended = "Stopped", now()
            if task.state not in TERMINAL:
                task.state, task.ended = "Stopped", now()
        job.state, job.ended = "Stopped", now()
        return 201, None

    def _start_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in ("Stopped", "Failed"):
            raise conflict(job.state)
        for task, inst in job.instances():
            if inst.state != "Finished":
                inst.state, inst.ended, inst.stop = "Waiting", None, threading.Event()
            if task.state != "Finished":
                task.state = "Waiting"
        job.state, job.ended, job.message = "Waiting", None, ""
        return 201, None

    def _change_priority(self, job_id: str, body: Any) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state != "Stopped":
            raise conflict(job.state)
        if not isinstance(body, dict) or not isinstance(body.get("Priority"), int):
            raise BCError(400, "InvalidPriority", "Specified parameter Priority is not valid.")
        job.desc["Priority"] = body["Priority"]
        return 200, None

    def _delete_job(self, job_id: str) -> tuple[int, Any]:
        job = self._get_job(job_id)
        if job.state not in TERMINAL:
            raise conflict(job.state)
        del self.jobs[job_id]
        return 204, None

    def _list_instances(self, segments: list[str], params: dict[str, str]) -> tuple[int, Any]:
        job, task = self._job_task(segments[1], segments[3])
        start = int(params.get("Marker") or 0)
        limit = max(1, min(100, int(params.get("MaxItemCount") or 50)))
        items = [i for i in task.instances if i.index >= start]
        state = params.get("State")
        if state:
            items = [i for i in items if i.state == state]
        page, rest = items[:limit], items[limit:]
        return 200, {
            "Items": [_instance_json(job, task, i) for i in page],
            "NextMarker": str(rest[0].index) if rest else "",
        }

    def _get_instance(self, segments: list[str]) -> tuple[int, Any]:
        job, task = self._job_task(segments[1], segments[3])
        index = int(segments[5]) if segments[5].isdigit() else -1
        if not 0 <= index < len(task.instances):
            raise not_found()
        return 200, _instance_json(job, task, task.instances[index])

    def _list(
        self, items: list[Any], params: dict[str, str], render: Any, key: str
    ) -> tuple[int, Any]:
        rows = [render(item) for item in items]
        if params.get("State"):
            rows = [r for r in rows if r.get("State") == params["State"]]
        if params.get("IsReverse", "").lower() == "true":
            rows.reverse()
        limit = max(1, min(100, int(params.get("MaxItemCount") or 50)))
        marker = params.get("Marker", "")
        if marker:
            keys = [str(r[key]) for r in rows]
            rows = rows[keys.index(marker) :] if marker in keys else []
        page, rest = rows[:limit], rows[limit:]
        return 200, {"Items": page, "NextMarker": str(rest[0][key]) if rest else ""}

    # --- clusters ----------------------------------------------------------------------

    def _get_cluster(self, cluster_id: str) -> Cluster:
        if cluster_id not in self.clusters:
            raise not_found()
        return self.clusters[cluster_id]

    def _create_cluster(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        if (existing := self._idempotent("cluster", params, body)) is not None:
            return 201, {"Id": existing}
        _require(body, "Name", "ImageId", "Groups")
        if not NAME_RE.match(str(body["Name"])):
            raise BCError(
                400, "InvalidName", "Name must be [A-Za-z0-9_-], not starting with a digit."
            )
        groups = body["Groups"]
        if not isinstance(groups, dict) or not groups:
            raise BCError(400, "MissingGroups", "Groups is mandatory for this action.")
        desired: dict[str, int] = {}
        for name, group in groups.items():
            count = group.get("DesiredVMCount")
            if not isinstance(count, int) or count < 0:
                raise BCError(400, f"InvalidGroups.{name}", "DesiredVMCount is not valid.")
            if not (group.get("InstanceType") or body.get("InstanceType")):
                raise BCError(400, f"InvalidGroups.{name}", "InstanceType is mandatory.")
            desired[name] = count
        cluster = Cluster(f"cls-{_alnum(20)}", body, now(), desired, {name: [] for name in desired})
        for name, count in desired.items():
            cluster.vms[name] = [VM(f"i-{_alnum(20)}", now()) for _ in range(count)]
            cluster.log(name, "Creating instance group successfully")
        self.clusters[cluster.id] = cluster
        self._remember("cluster", params, body, cluster.id)
        return 201, {"Id": cluster.id}

    def _modify_cluster(self, cluster_id: str, body: Any) -> tuple[int, Any]:
        cluster = self._get_cluster(cluster_id)
        if cluster.state != "Active":
            raise conflict(cluster.state)
        for name, change in (body or {}).get("Groups", {}).items():
            if name not in cluster.desired:
                raise BCError(400, f"InvalidGroups.{name}", f"Group {name} does not exist.")
            if "DesiredVMCount" in change:
                count = change["DesiredVMCount"]
                if not isinstance(count, int) or count < 0:
                    raise BCError(400, "InvalidDesiredVMCount", "DesiredVMCount is not valid.")
                cluster.desired[name] = count
                cluster.log(name, f"Changing desired VM count to {count} successfully")
        return 200, None

    def _delete_cluster(self, cluster_id: str) -> tuple[int, Any]:
        cluster = self._get_cluster(cluster_id)
        if cluster.state == "Deleting":
            raise conflict(cluster.state)
        cluster.state = "Deleting"
        for vms in cluster.vms.values():
            for vm in vms:
                vm.state = "Deleting"
        cluster.log("cluster", "Deleting cluster")
        return 204, None

    def _list_vms(self, segments: list[str], params: dict[str, str]) -> tuple[int, Any]:
        cluster = self._get_cluster(segments[1])
        if segments[3] not in cluster.vms:
            raise not_found()
        return self._list(cluster.vms[segments[3]], params, _vm_json, "Id")

    # --- the scheduler and instance execution -------------------------------------------

    def _schedule(self) -> None:
        while not self._stopping.wait(0.02):
            if not self.run_commands:
                continue
            try:
                with self._lock:
                    self.tick()
                    self._start_due()
            except Exception as exc:  # the fake itself failed: tests check this list
                self.internal_errors.append(exc)

    def _slots(self, task: Task) -> int:
        """How many more instances of ``task`` may start now."""
        free = self.max_parallel - len(self._running)
        cluster_id = task.desc.get("ClusterId") or ""
        if cluster_id:  # one instance per running VM of the cluster at a time
            busy = sum(
                1
                for j in self.jobs.values()
                for t, i in j.instances()
                if i.state == "Running" and t.desc.get("ClusterId") == cluster_id
            )
            vms = self.running_vms(cluster_id) if cluster_id in self.clusters else 0
            free = min(free, vms - busy)
        return free

    def _start_due(self) -> None:
        for job in sorted(self.jobs.values(), key=lambda j: -int(j.desc["Priority"])):
            if job.state not in ("Waiting", "Running"):
                continue
            for task in job.tasks.values():
                if task.state in TERMINAL or not self._upstream_done(job, task):
                    continue
                for inst in task.instances:
                    if inst.state == "Waiting" and self._slots(task) > 0:
                        self._begin(job, task, inst)
                        key = (job.id, task.name, inst.index)
                        self._running.add(key)
                        threading.Thread(
                            target=self._execute, args=(job, task, inst), daemon=True
                        ).start()

    def _upstream_done(self, job: Job, task: Task) -> bool:
        deps = job.desc["DAG"].get("Dependencies") or {}
        upstream = [name for name, children in deps.items() if task.name in children]
        return all(job.tasks[name].state == "Finished" for name in upstream)

    def _begin(self, job: Job, task: Task, inst: Instance) -> None:
        moment = now()
        inst.state, inst.started, inst.ended = "Running", moment, None
        inst.node_ip = inst.node_ip or f"192.168.1.{inst.index % 250 + 2}"
        if task.state == "Waiting":
            task.state, task.started = "Running", moment
        if job.state == "Waiting":
            job.state, job.started = "Running", moment

    def _end_attempt(
        self, job: Job, task: Task, inst: Instance, exit_code: int, code: str, message: str
    ) -> None:
        if inst.state != "Running":
            return  # stopped meanwhile
        inst.exit_code, inst.error_code, inst.error_message = exit_code, code, message
        inst.ended, inst.progress = now(), 100 if exit_code == 0 else inst.progress
        if exit_code == 0:
            inst.state = "Finished"
        elif inst.retry_count < int(task.desc.get("MaxRetryCount") or 0):
            inst.retry_count += 1
            inst.state, inst.started = "Waiting", None
            return
        else:
            inst.state = "Failed"
        if all(i.state in TERMINAL for i in task.instances):
            failed = any(i.state == "Failed" for i in task.instances)
            task.state, task.ended = ("Failed" if failed else "Finished"), now()
        if inst.state == "Failed" and job.desc.get("JobFailOnInstanceFail", True):
            for _t, other in job.instances():
                if other.state not in TERMINAL:
                    self._kill(other)
                    other.state, other.ended = "Stopped", now()
            self._finish_job(job, "Failed", f"Instance {inst.index} of task {task.name} failed.")
        elif all(t.state in TERMINAL for t in job.tasks.values()):
            self._finish_job(job, "Finished", "")

    def _finish_job(self, job: Job, state: str, message: str) -> None:
        for task in job.tasks.values():
            if task.state not in TERMINAL:
                task.state, task.ended = ("Stopped" if state != "Finished" else state), now()
        job.state, job.message, job.ended = state, message, now()
        if state == "Finished" and job.desc.get("AutoRelease"):
            self.jobs.pop(job.id, None)

    def _kill(self, inst: Instance) -> None:
        inst.stop.set()
        if inst.process is not None and inst.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.process.pid, signal.SIGKILL)

    def _execute(self, job: Job, task: Task, inst: Instance) -> None:
        key = (job.id, task.name, inst.index)
        vm = Path(
            tempfile.mkdtemp(prefix=f"{job.id[-6:]}-{task.name}-{inst.index}-", dir=self.work_root)
        )
        try:
            with self._lock:
                injected = inst.fail_attempts > 0
                if injected:
                    inst.fail_attempts -= 1
            if injected:
                code, error = 137, ("InstanceLost", "The VM running the instance was lost.")
            else:
                code, error = self._run(job, task, inst, vm)
            with self._lock:
                self._end_attempt(job, task, inst, code, *error)
        except Exception as exc:
            self.internal_errors.append(exc)
            with self._lock:
                self._end_attempt(job, task, inst, 1, "FakeError", repr(exc))
        finally:
            with self._lock:
                self._running.discard(key)
            if not self.keep_work_dirs:
                shutil.rmtree(vm, ignore_errors=True)

    def _run(self, job: Job, task: Task, inst: Instance, vm: Path) -> tuple[int, tuple[str, str]]:
        desc = task.desc
        params = desc.get("Parameters") or {}
        command = params.get("Command") or {}
        root, work = vm / "root", vm / "workdir"
        work.mkdir(parents=True)
        root.mkdir()
        if package := command.get("PackagePath"):
            data = self._oss_read(package)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(work, filter="data")
        writable: list[tuple[Path, str]] = []
        # Files as they came from OSS: a mount writes back only what the command changed.
        synced: dict[Path, tuple[int, int]] = {}
        for entry in (desc.get("Mounts") or {}).get("Entries") or []:
            local = _under(root, entry["Destination"])
            self._download_prefix(entry["Source"], local)
            if entry.get("WriteSupport"):
                writable.append((local, entry["Source"]))
                for path in local.rglob("*"):
                    if path.is_file():
                        stat = path.stat()
                        synced[path] = (stat.st_size, stat.st_mtime_ns)
        for source, destination in (desc.get("InputMapping") or {}).items():
            self._download_prefix(source, _under(root, destination))
        env = {
            **os.environ,
            **{k: str(v) for k, v in (command.get("EnvVars") or {}).items()},
            "BATCH_COMPUTE_DAG_JOB_ID": job.id,
            "BATCH_COMPUTE_DAG_TASK_ID": task.name,
            "BATCH_COMPUTE_DAG_INSTANCE_ID": str(inst.index),
            "BATCH_COMPUTE_OSS_HOST": "oss-fake.aliyuncs.com",
            "BATCH_COMPUTE_REGION": self.region,
            "BATCH_COMPUTE_CLUSTER_ID": desc.get("ClusterId") or "auto",
            "BATCH_COMPUTE_WORKER_ID": f"worker-{inst.index}",
            self.node_root_env: str(root),
        }
        stdout, stderr = vm / "stdout", vm / "stderr"
        timeout = float(desc.get("Timeout") or 3600)
        started = time.monotonic()
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            try:
                process = subprocess.Popen(
                    shlex.split(command.get("CommandLine") or ""),
                    cwd=work,
                    env=env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                err.write(f"cannot run the command line: {exc}\n".encode())
                process = None
            inst.process = process
            timed_out = False
            while process is not None and process.poll() is None:
                if inst.stop.wait(self.sync_interval):
                    self._kill(inst)
                elif time.monotonic() - started > timeout:
                    timed_out = True
                    self._kill(inst)
                for local, source in writable:
                    self._upload_tree(local, source, synced)
            code = process.wait() if process is not None else 127
        for local, source in writable:
            self._upload_tree(local, source, synced)
        for local_dir, target in (desc.get("OutputMapping") or {}).items():
            self._upload_tree(_under(root, local_dir), target, {})
        name = f"{job.id}.{task.name}.{inst.index}"
        for local_file, target in (desc.get("LogMapping") or {}).items():
            path = _under(root, local_file)
            if path.is_file():
                self._oss_write(f"{target}{path.name}.{name}", path.read_bytes())
        self._oss_write(f"{params.get('StdoutRedirectPath', '')}stdout.{name}", stdout.read_bytes())
        self._oss_write(f"{params.get('StderrRedirectPath', '')}stderr.{name}", stderr.read_bytes())
        if timed_out:
            return 137, ("Timeout", f"The instance ran longer than {timeout:g} s.")
        return code, ("", "")

    # --- OSS, through the OSS fake's own tables -----------------------------------------

    def _split(self, url: str) -> tuple[str, str]:
        if not url.startswith("oss://"):
            raise ValueError(f"not an OSS URL: {url!r}")
        bucket, _, key = url[len("oss://") :].partition("/")
        return bucket, key

    def _oss_read(self, url: str) -> bytes:
        bucket, key = self._split(url)
        obj = self.oss.get(bucket, key)
        if obj is None:
            raise FileNotFoundError(url)
        return bytes(obj.data)

    def _oss_write(self, url: str, data: bytes) -> None:
        if url.startswith("oss://"):
            bucket, key = self._split(url)
            self.oss.put(bucket, key, data)

    def _download_prefix(self, url: str, local: Path) -> None:
        bucket, prefix = self._split(url)
        local.mkdir(parents=True, exist_ok=True)
        for key in self.oss.keys(bucket):
            if key.startswith(prefix) and not key.endswith("/"):
                target = local / key[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.oss.get(bucket, key).data)

    def _upload_tree(self, local: Path, url: str, synced: dict[Path, tuple[int, int]]) -> None:
        if not local.is_dir():
            return
        for path in sorted(local.rglob("*")):
            if not path.is_file():
                continue
            try:
                stat = path.stat()
                mark = (stat.st_size, stat.st_mtime_ns)
                if synced.get(path) == mark:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # removed while we looked
            self._oss_write(url + path.relative_to(local).as_posix(), data)
            synced[path] = mark


def _under(root: Path, node_path: str) -> Path:
    return root / node_path.lstrip("/")


def _require(body: Any, *keys: str) -> None:
    if not isinstance(body, dict):
        raise BCError(400, "InvalidHttpBody", "The request body must be a JSON object.")
    for key in keys:
        if key not in body or body[key] in ("", None):
            raise BCError(400, f"Missing{key}", f"{key} is mandatory for this action.")


def _route(method: str, segments: list[str]) -> str:
    names = {1: "{id}", 3: "{task}", 5: "{n}"}
    if segments[:1] == ["clusters"]:
        names = {1: "{id}", 3: "{group}", 5: "{iid}"}
    shape = [names.get(i, s) if i % 2 else s for i, s in enumerate(segments)]
    return f"{method} /{'/'.join(shape)}"


def _metrics(states: list[str]) -> dict[str, int]:
    return {
        f"{s}Count": states.count(s)
        for s in ("Waiting", "Running", "Finished", "Failed", "Stopped")
    }


def _job_json(job: Job) -> dict[str, Any]:
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
        "TaskMetrics": _metrics([t.state for t in job.tasks.values()]),
        "InstanceMetrics": _metrics([i.state for _t, i in job.instances()]),
    }


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "TaskName": task.name,
        "State": task.state,
        "StartTime": utc_text(task.started),
        "EndTime": utc_text(task.ended),
        "InstanceMetrics": _metrics([i.state for i in task.instances]),
    }


def _instance_json(job: Job, task: Task, inst: Instance) -> dict[str, Any]:
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


def _cluster_json(cluster: Cluster) -> dict[str, Any]:
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


def _vm_json(vm: VM) -> dict[str, Any]:
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


# What the account may use in the fake region (GET /quotas, /available, /images).
INSTANCE_TYPES = [("bcs.a2.large", 4, 8.0), ("bcs.a2.xlarge", 8, 16.0), ("ecs.sn1ne.large", 2, 4.0)]
DISK_TYPES = ["cloud_efficiency", "cloud_ssd"]
QUOTAS = {
    "AvailableClusterInstanceType": [t[0] for t in INSTANCE_TYPES],
    "AvailableSpotInstanceType": ["bcs.a2.large"],
    "AvailableClusterResourceType": ["OnDemand", "Spot"],
    "AvailableClusterInstanceSystemDiskType": DISK_TYPES,
    "AvailableClusterInstanceDataDiskType": DISK_TYPES,
}
AVAILABLE = {
    "AvailableClusterInstanceType": [
        {
            "InstanceType": n,
            "CpuCore": c,
            "MemorySize": m,
            "Network": {"Classic": False, "Vpc": True},
        }
        for n, c, m in INSTANCE_TYPES
    ],
    "AvailableSpotInstanceType": [
        {"InstanceType": "bcs.a2.large", "CpuCore": 4, "MemorySize": 8.0, "Network": {"Vpc": True}}
    ],
    "AvailablePrepaidInstanceType": [],
    "AvailableResourceType": ["OnDemand", "Spot"],
    "AvailableSystemDiskType": DISK_TYPES,
    "AvailableDataDiskType": DISK_TYPES,
}
IMAGES = [
    {
        "Id": "img-ubuntu",
        "Name": "Ubuntu 16.04",
        "Type": "System",
        "Description": "",
        "EcsImageId": "m-ubuntu1604",
        "OwnerId": 0,
        "Platform": "Linux",
        "CreationTime": "2016-11-01T15:25:02.837728Z",
    },
    {
        "Id": "img-blender",
        "Name": "Blender 3.4",
        "Type": "Self",
        "Description": "",
        "EcsImageId": "m-blender34",
        "OwnerId": 123456,
        "Platform": "Linux",
        "CreationTime": "2026-11-01T15:25:02.837728Z",
    },
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeBatchCompute


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        request_id = str(uuid.uuid4()).upper()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, payload = fake.handle(self.command, self.path, headers, body)
            except BCError as exc:
                status, payload = (
                    exc.status,
                    {
                        "Code": exc.code,
                        "Message": exc.message,
                        "RequestId": request_id,
                    },
                )
            except Exception as exc:
                fake.internal_errors.append(exc)
                status, payload = (
                    500,
                    {
                        "Code": "InternalError",
                        "Message": "The request processing has been failed (fake error).",
                        "RequestId": request_id,
                    },
                )
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-acs-request-id", request_id)
            self.send_header("Connection", "close")
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
